"""Private helpers that several layers share (device choice, token-budget batching)."""

"""Reliability: property-based tests, malformed input, faults."""

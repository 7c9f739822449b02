"""Text to vectors: the local ReasonIR encoder and what it is made of (backbones, packed attention, batching,
the embedding cache, the task instructions), and the encoder served by an OpenAI-compatible server."""

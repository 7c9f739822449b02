"""ReasonIR embeddings for LlamaIndex."""

from llama_index.embeddings.reasonir.base import ReasonIREmbedding

__all__ = ["ReasonIREmbedding"]

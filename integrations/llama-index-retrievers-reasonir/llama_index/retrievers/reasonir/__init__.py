"""ReasonIR retrieval for LlamaIndex: a retriever over a reasonir-rag Chroma collection and a query transform."""

from llama_index.retrievers.reasonir.base import ReasonIRRetriever
from llama_index.retrievers.reasonir.query_transform import ReasonIRQueryTransform

__all__ = ["ReasonIRQueryTransform", "ReasonIRRetriever"]

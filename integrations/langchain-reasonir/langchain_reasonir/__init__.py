"""LangChain integration for reasonir-rag: swap one import and keep your chain.

- :class:`ReasonIREmbeddings`: ``Embeddings`` with ReasonIR's query and document prefixes.
- :class:`ReasonIRRetriever`: a retriever over the core ``ChromaStore`` (rewriting and reranking optional).
- :class:`ReasonIRReranker`: ReasonIR's LLM reranker as a document compressor.
- :class:`ReasonIRQueryRewriter`: ReasonIR's query rewriting as a ``str -> str`` Runnable.
"""

from __future__ import annotations

from langchain_reasonir.document_compressors import ReasonIRReranker
from langchain_reasonir.embeddings import ReasonIREmbeddings
from langchain_reasonir.retrievers import ReasonIRRetriever
from langchain_reasonir.rewriters import ReasonIRQueryRewriter

__version__ = "0.1.0"

__all__ = ["ReasonIREmbeddings", "ReasonIRQueryRewriter", "ReasonIRReranker", "ReasonIRRetriever", "__version__"]

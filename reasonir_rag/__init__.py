"""reasonir-rag: ReasonIR retrieval for reasoning-heavy RAG.

Importing the package stays light: torch, transformers and chromadb load only when the class
that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reasonir_rag._version import __version__
from reasonir_rag.errors import (
    BulkEmbeddingError,
    CollectionNotFoundError,
    DataNotFoundError,
    EncoderMismatchError,
    EncoderOutOfMemoryError,
    GPQAPasswordError,
    InvalidInputError,
    LLMError,
    MissingDependencyError,
    ReasonIRError,
    RerankError,
    ServiceUnavailableError,
    StorageError,
    UnsupportedError,
    UsageError,
)
from reasonir_rag.types import Document, Rewrite, ScoredDocument

_LAZY = {
    "ReasonIREncoder": "reasonir_rag.encoding.encoder",
    "EncoderConfig": "reasonir_rag.encoding.config",
    "EmbeddingCache": "reasonir_rag.encoding.cache",
    "ChromaStore": "reasonir_rag.index.store",
    "ReasonIREmbeddingFunction": "reasonir_rag.index.embedding_function",
    "chunk_documents": "reasonir_rag.index.chunking",
    "load_documents": "reasonir_rag.index.loaders",
    "chunk_text": "reasonir_rag.index.chunking",
    "bright_instruction": "reasonir_rag.encoding.instructions",
    "QueryRewriter": "reasonir_rag.pipeline.rewriter",
    "QwenReranker": "reasonir_rag.pipeline.reranker",
    "TransformersLLM": "reasonir_rag.llm",
    "OpenAICompatibleLLM": "reasonir_rag.llm",
    "load_llm": "reasonir_rag.llm",
    "RAGEvaluator": "reasonir_rag.eval.runner",
    "EvalSettings": "reasonir_rag.eval.runner",
    "BM25Retriever": "reasonir_rag.eval.bm25",
    "Journal": "reasonir_rag.eval.journal",
    "load_mmlu": "reasonir_rag.eval.mmlu",
    "load_gpqa": "reasonir_rag.eval.gpqa",
    "fetch_gpqa": "reasonir_rag.eval.gpqa",
    "Question": "reasonir_rag.eval.datasets",
    "evaluate_retrieval": "reasonir_rag.eval.retrieval",
    "build_report": "reasonir_rag.eval.report",
    "embed_corpus_with_ray": "reasonir_rag.bulk.ray_embed",
    "ChromaSink": "reasonir_rag.bulk.sinks",
    "ParquetSink": "reasonir_rag.bulk.sinks",
    "OpenAIEmbeddingsEncoder": "reasonir_rag.encoding.served",
    "synthesize": "reasonir_rag.synth.run",
    "SynthesisSettings": "reasonir_rag.synth.run",
}

if TYPE_CHECKING:  # pragma: no cover
    from reasonir_rag.bulk.ray_embed import embed_corpus_with_ray
    from reasonir_rag.bulk.sinks import ChromaSink, ParquetSink
    from reasonir_rag.encoding.cache import EmbeddingCache
    from reasonir_rag.encoding.config import EncoderConfig
    from reasonir_rag.encoding.encoder import ReasonIREncoder
    from reasonir_rag.encoding.instructions import bright_instruction
    from reasonir_rag.encoding.served import OpenAIEmbeddingsEncoder
    from reasonir_rag.eval.bm25 import BM25Retriever
    from reasonir_rag.eval.datasets import Question
    from reasonir_rag.eval.gpqa import fetch_gpqa, load_gpqa
    from reasonir_rag.eval.journal import Journal
    from reasonir_rag.eval.mmlu import load_mmlu
    from reasonir_rag.eval.report import build_report
    from reasonir_rag.eval.retrieval import evaluate_retrieval
    from reasonir_rag.eval.runner import EvalSettings, RAGEvaluator
    from reasonir_rag.index.chunking import chunk_documents, chunk_text
    from reasonir_rag.index.embedding_function import ReasonIREmbeddingFunction
    from reasonir_rag.index.loaders import load_documents
    from reasonir_rag.index.store import ChromaStore
    from reasonir_rag.llm import OpenAICompatibleLLM, TransformersLLM, load_llm
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.rewriter import QueryRewriter
    from reasonir_rag.synth.run import SynthesisSettings, synthesize

__all__ = [  # noqa: RUF022 - grouped by layer
    "Document", "ScoredDocument", "__version__",
    "ReasonIREncoder", "EncoderConfig", "EmbeddingCache", "ChromaStore", "chunk_documents", "load_documents",
    "chunk_text", "bright_instruction", "ReasonIREmbeddingFunction",
    "QueryRewriter", "Rewrite", "QwenReranker", "TransformersLLM", "OpenAICompatibleLLM", "load_llm",
    "RAGEvaluator", "EvalSettings", "fetch_gpqa",
    "BM25Retriever", "Journal", "load_mmlu", "load_gpqa", "Question", "evaluate_retrieval", "build_report",
    "embed_corpus_with_ray", "ChromaSink", "ParquetSink", "OpenAIEmbeddingsEncoder",
    "synthesize", "SynthesisSettings",
    # errors (reasonir_rag.errors): ReasonIRError is the base of every one
    "ReasonIRError",
    "InvalidInputError",
    "DataNotFoundError",
    "StorageError",
    "ServiceUnavailableError",
    "MissingDependencyError",
    "UnsupportedError",
    "UsageError",
    "EncoderOutOfMemoryError",
    "EncoderMismatchError",
    "CollectionNotFoundError",
    "GPQAPasswordError",
    "LLMError",
    "RerankError",
    "BulkEmbeddingError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reasonir_rag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

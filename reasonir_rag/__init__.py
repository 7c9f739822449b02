"""reasonir-rag: ReasonIR retrieval for reasoning-heavy RAG.

Importing the package stays light: torch, transformers and chromadb load only when the class
that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reasonir_rag.types import Document, ScoredDocument

__version__ = "0.1.0"

_LAZY = {
    "ReasonIREncoder": "reasonir_rag.encoder",
    "EncoderConfig": "reasonir_rag.encoder",
    "EmbeddingCache": "reasonir_rag.cache",
    "ChromaStore": "reasonir_rag.store",
    "EncoderMismatchError": "reasonir_rag.store",
    "chunk_text": "reasonir_rag.chunking",
    "bright_instruction": "reasonir_rag.instructions",
}

if TYPE_CHECKING:  # pragma: no cover
    from reasonir_rag.cache import EmbeddingCache
    from reasonir_rag.chunking import chunk_text
    from reasonir_rag.encoder import EncoderConfig, ReasonIREncoder
    from reasonir_rag.instructions import bright_instruction
    from reasonir_rag.store import ChromaStore, EncoderMismatchError

__all__ = [  # noqa: RUF022 - grouped by layer
    "Document", "ScoredDocument", "__version__",
    "ReasonIREncoder", "EncoderConfig", "EmbeddingCache", "ChromaStore", "EncoderMismatchError",
    "chunk_text", "bright_instruction",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reasonir_rag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

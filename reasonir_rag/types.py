"""Plain result types shared by the core and the framework integrations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

# Which prefix a text is encoded with: a question (query prefix) or a passage (document prefix, e.g. HyDE).
PrefixKind = Literal["query", "document"]
# What an LLM is sent: a rendered string, or chat messages ({"role": ..., "content": ...}).
Message = Mapping[str, str]
Prompt = Union[str, Sequence[Message]]  # noqa: UP007 - a runtime alias, kept readable on 3.10


@dataclass(frozen=True)
class Document:
    """A text to index, with a stable id and source metadata."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredDocument:
    """A retrieved (or reranked) document; ``score`` is higher-is-better (cosine for retrieval)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0


@dataclass(frozen=True)
class Rewrite:
    """A rewritten query and how to encode it."""

    text: str  # what to encode
    prefix_kind: PrefixKind  # "query": encode_queries(...); "document": encode_documents(...)
    original: str
    generated: str  # the LLM's raw answer ("" when it failed)
    truncated: bool = False
    cached: bool = False
    error: str | None = None  # why the original question was used instead (on_error="fallback")

"""What the store keeps beside each text: its id, its text hash, metadata Chroma can hold; and what an add did."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger("reasonir_rag.index.store")  # its messages are the store's

HASH_KEY = "reasonir_text_sha256"
_INTERNAL_KEYS = frozenset({HASH_KEY})
Record = tuple[str, dict[str, Any]]  # (text, cleaned metadata) of one id
_INT64 = 2**63


@dataclass
class AddStats:
    """What one :meth:`ChromaStore.add` (or :meth:`~ChromaStore.add_embeddings`) did."""

    received: int = 0
    added: int = 0  # encoded and written (new or changed text)
    unchanged: int = 0  # already indexed with the same text: no model time spent
    metadata_updated: int = 0  # same text, new metadata: rewritten without encoding
    invalid: int = 0  # empty, whitespace-only or non-string texts, skipped
    duplicates: int = 0  # repeated ids within the call (the last one wins)
    ids: list[str] = field(default_factory=list)  # the ids now in the index, in input order (invalid ones left out)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def content_id(text: str) -> str:
    """The default id of a text: its sha256, first 32 hex digits (stable across runs and machines)."""
    return text_hash(text)[:32]


class MetadataCleaner:
    """Chroma takes str/int/float/bool values only: drop None, JSON-encode containers, log each kind once."""

    def __init__(self) -> None:
        self._logged: set[str] = set()

    def _once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            logger.info(message, *args)

    def __call__(self, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
        clean: dict[str, Any] = {}
        for key, value in metadata.items():
            key = str(key)
            if key in _INTERNAL_KEYS or key.startswith("#"):
                self._once("reserved", "metadata key %r is reserved and was dropped", key)
                continue
            if value is None:
                self._once("none", "metadata values that are None are dropped (Chroma cannot store None)")
                continue
            if isinstance(value, float) and not math.isfinite(value):
                self._once("nan", "non-finite float metadata values are stored as strings")
                value = str(value)
            elif isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
                self._once("bigint", "integers beyond 64 bits are stored as strings")
                value = str(value)
            elif isinstance(value, (list, tuple, dict)):
                self._once("json", "list/dict metadata values are stored as JSON strings (Chroma takes scalars)")
                value = json.dumps(value, ensure_ascii=False, default=str)
            elif not isinstance(value, (str, int, float, bool)):
                self._once("str", "metadata values of type %s are stored as str()", type(value).__name__)
                value = str(value)
            clean[key] = value
        return clean


def repair_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates: Chroma cannot store them; same repair as the encoder
        return text.encode("utf-8", "replace").decode("utf-8")


def public_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if k not in _INTERNAL_KEYS}

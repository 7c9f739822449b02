"""What the store keeps beside each text: its id, its text hash, metadata Chroma can hold; and what an add did.

:func:`build_records` turns what one ``add`` was given (texts or Documents, ids, metadatas) into these records,
the same way for :meth:`ChromaStore.add` and :meth:`ChromaStore.add_embeddings`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.types import Document

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


def build_records(items: list[Any], ids: Sequence[str] | None, metadatas: Sequence[Mapping[str, Any] | None] | None,
                  clean_meta: MetadataCleaner) -> tuple[AddStats, dict[str, Record]]:
    """``{id: (text, clean metadata)}`` in input order, and the stats of what was left out."""
    for what, seq in (("ids", ids), ("metadatas", metadatas)):
        if seq is not None and (isinstance(seq, str) or len(seq) != len(items)):
            got = "a string" if isinstance(seq, str) else f"{len(seq)}"
            raise InvalidInputError(f"{what} must be a list as long as the texts ({len(items)}), got {got}")
    stats = AddStats(received=len(items))
    records: dict[str, Record] = {}
    invalid: list[str] = []
    first_seen: dict[str, None] = {}
    for i, item in enumerate(items):
        text, meta, doc_id = item, {}, None
        if isinstance(item, Document):
            text, meta, doc_id = item.text, dict(item.metadata), item.id or None  # "" -> content id
        if ids is not None:
            doc_id = ids[i]
        if metadatas is not None and (extra := metadatas[i]) is not None:
            meta = {**meta, **extra}
        if doc_id is not None and (not isinstance(doc_id, str) or not doc_id):
            raise InvalidInputError(f"id #{i} must be a non-empty string, got {doc_id!r}")
        if not isinstance(text, str) or not text.strip():
            what = "empty" if isinstance(text, str) else type(text).__name__
            invalid.append(f"{doc_id} ({what})" if doc_id else f"#{i} ({what})")
            continue
        text = repair_unicode(text)
        doc_id = doc_id or content_id(text)
        first_seen.setdefault(doc_id)
        if doc_id in records:
            stats.duplicates += 1
        records[doc_id] = (text, clean_meta(meta))
    if invalid:
        stats.invalid = len(invalid)
        shown = ", ".join(invalid[:10]) + (f" and {len(invalid) - 10} more" if len(invalid) > 10 else "")
        logger.warning("skipped %d empty or non-string text(s): %s", len(invalid), shown)
    if stats.duplicates:
        logger.warning("%d repeated id(s) in one add(); the last occurrence of each was kept", stats.duplicates)
    stats.ids = [i for i in first_seen if i in records]
    return stats, records

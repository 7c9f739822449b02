"""What the store keeps beside each text, the records of one add, and what an add did.

:func:`build_records` turns what one ``add`` was given (texts or Documents, ids, metadatas) into records, the
same way for :meth:`ChromaStore.add` and :meth:`ChromaStore.add_embeddings`. A record Chroma could not store
(an empty or non-string text or id, a lone surrogate in its id, text or metadata, a rejected metadata key or
value: the type policy is in ``metadata.py``) is rejected alone, named with its source file and line when it
came from :func:`~reasonir_rag.index.loaders.load_documents`; every other record is stored. A repeated id keeps
its FIRST occurrence, within one call and (in the CLI, through :class:`FirstSeen`) across a whole input, so a
re-run stores and encodes exactly what the first run did.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.index.metadata import (
    HASH_KEY,
    INTERNAL_KEYS,
    PARENT_KEY,
    MetadataNormaliser,
    check_utf8,
    public_metadata,
)
from reasonir_rag.types import Document

logger = logging.getLogger("reasonir_rag.index.store")  # its messages are the store's

__all__ = [  # the metadata names are re-exported: the bulk sinks and the tests import them from here
    "HASH_KEY", "INTERNAL_KEYS", "PARENT_KEY", "AddStats", "FirstSeen", "MetadataNormaliser", "Record", "Rejected",
    "SourcedDocument", "as_list", "build_records", "content_id", "public_metadata", "text_hash",
]
_SHOWN = 10


@dataclass(frozen=True)
class SourcedDocument(Document):
    """A :class:`Document` that knows where it came from: ``origin`` (``file:line``) names it when it is rejected;
    ``parent`` is the document a chunk was cut from (re-indexing the parent replaces all of its chunks)."""

    origin: str = ""
    parent: str | None = None


class Record(NamedTuple):
    text: str
    metadata: dict[str, Any]  # normalised (metadata.py), without the store's internal keys
    parent: str | None = None
    origin: str = ""  # file:line, to name the record if Chroma refuses it


class Rejected(NamedTuple):
    """A record that was not stored: its id (or ``#index`` in the input), where it came from, and why."""

    id: str
    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.id}" + (f" ({self.origin})" if self.origin else "") + f": {self.reason}"


@dataclass
class AddStats:
    """What one :meth:`ChromaStore.add` (or :meth:`~ChromaStore.add_embeddings`) did."""

    received: int = 0
    added: int = 0  # encoded and written (new or changed text)
    unchanged: int = 0  # already indexed with the same text: no model time spent
    metadata_updated: int = 0  # same text, new metadata: rewritten without encoding
    invalid: int = 0  # rejected records (len(rejected))
    duplicates: int = 0  # repeated ids within the call (the first one is kept)
    removed: int = 0  # old chunks of a re-indexed document that its new version no longer has, deleted
    ids: list[str] = field(default_factory=list)  # the ids now in the index, in input order (rejected ones left out)
    rejected: list[Rejected] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)  # each repeated id once, in input order
    removed_ids: list[str] = field(default_factory=list)

    def reject(self, doc_id: str, origin: str, reason: str) -> None:
        self.rejected.append(Rejected(doc_id, origin, reason))
        self.invalid = len(self.rejected)

    def drop(self, doc_id: str) -> None:
        """``doc_id`` was rejected after its record was built (Chroma refused it): it is not in the index."""
        self.ids = [i for i in self.ids if i != doc_id]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def content_id(text: str) -> str:
    """The default id of a text: its sha256, first 32 hex digits (stable across runs and machines)."""
    return text_hash(text)[:32]


def _shown(items: Sequence[Any]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return "; ".join(str(i) for i in items[:_SHOWN]) + more


def as_list(caller: str, what: str, seq: Any, each: str) -> list[Any]:
    """``seq`` as a list, refusing what only looks like one: a str (its characters), a dict (its keys, or
    ``KeyError: 0`` when indexed), a set (no order to pair with the texts) or a lone value."""
    if isinstance(seq, (str, bytes, Mapping, set, frozenset)) or not isinstance(seq, Iterable):
        name = "dict" if isinstance(seq, Mapping) else type(seq).__name__
        kind = f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
        raise InvalidInputError(f"{caller}: {what} must be a list ({each}), got {kind}")
    return list(seq)


def build_records(items: list[Any], ids: Sequence[str] | None, metadatas: Sequence[Mapping[str, Any] | None] | None,
                  normalise: MetadataNormaliser, caller: str = "add()") -> tuple[AddStats, dict[str, Record]]:
    """``{id: Record}`` in input order, and the stats naming what was rejected or repeated."""
    if ids is not None:
        ids = as_list(caller, "ids", ids, "one string per text")
    if metadatas is not None:
        metadatas = as_list(caller, "metadatas", metadatas, "one mapping or None per text")
    for what, seq in (("ids", ids), ("metadatas", metadatas)):
        if seq is not None and len(seq) != len(items):
            raise InvalidInputError(
                f"{caller}: {what} must be a list as long as the texts ({len(items)}), got {len(seq)}")
    stats = AddStats(received=len(items))
    records: dict[str, Record] = {}
    for i, item in enumerate(items):
        text, meta, doc_id, origin, parent = item, {}, None, "", None
        if isinstance(item, Document):
            text, meta, doc_id = item.text, dict(item.metadata), item.id or None  # "" -> content id
        if isinstance(item, SourcedDocument):
            origin, parent = item.origin, item.parent
        if ids is not None:
            doc_id = ids[i]
        if metadatas is not None and (extra := metadatas[i]) is not None:
            meta = {**meta, **extra} if isinstance(extra, Mapping) else extra
        try:
            doc_id = _check(i, doc_id, text)
            clean = normalise(meta)
        except InvalidInputError as exc:
            shown = doc_id.encode("utf-8", "backslashreplace").decode() if isinstance(doc_id, str) and doc_id else ""
            stats.reject(shown or f"#{i}", origin, str(exc))
            continue
        doc_id = doc_id or content_id(text)
        if doc_id in records:
            stats.duplicates += 1
            if doc_id not in stats.duplicate_ids:
                stats.duplicate_ids.append(doc_id)
            continue
        records[doc_id] = Record(text, clean, parent, origin)
    if stats.rejected:
        logger.warning("rejected %d record(s), the others are stored: %s", len(stats.rejected), _shown(stats.rejected))
    if stats.duplicates:
        logger.warning("%d repeated id(s) in one add(); the first occurrence of each was kept: %s",
                       stats.duplicates, _shown(stats.duplicate_ids))
    stats.ids = list(records)
    return stats, records


def _check(i: int, doc_id: Any, text: Any) -> str | None:
    """The id (None: make one from the text) once the id and text are storable; else why not."""
    if doc_id is not None:
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidInputError(f"id #{i} must be a non-empty string, got {doc_id!r}")
        check_utf8("the id", doc_id)
    if not isinstance(text, str):
        raise InvalidInputError(f"the text is a {type(text).__name__}, not a string")
    if not text.strip():
        raise InvalidInputError("the text is empty")
    check_utf8("the text", text)
    return doc_id


class FirstSeen:
    """Keeps the first document of each id across a whole input read in groups (the CLI's ``add`` calls), so a
    repeated id is settled the same way on every run and never re-encoded; the repeats are listed in ``repeated``."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._check_meta = MetadataNormaliser()
        self.repeated: list[str] = []

    def __call__(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            if doc.id in self._seen:
                self.repeated.append(doc.id)
                continue
            if self._storable(doc):  # as in add(): a rejected occurrence does not take its id
                self._seen.add(doc.id)
            yield doc  # a rejected one still goes on, so that the store names it

    def _storable(self, doc: Document) -> bool:
        try:
            _check(0, doc.id, doc.text)
            self._check_meta(doc.metadata)
        except InvalidInputError:
            return False
        return True

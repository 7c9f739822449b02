"""The store's write path: records into a collection batch by batch, encoding only what is new or changed.

Each record carries a hash of its text. Before a batch is encoded its ids are looked up: an unchanged text is
skipped (a re-run costs no model time, a killed ingest resumes), a text with new metadata only is rewritten
with its stored vector, the rest is encoded and upserted. Calls to a Chroma server that cannot be reached (a
restart) are retried with backoff; when it stays away the error says how far the ingest got. A batch Chroma
refuses is written again record by record, so only the records it refuses are rejected (named in ``AddStats``).
After the batches, the chunks of each parent document that its new version no longer has are deleted (replace-all:
a document re-indexed with fewer chunks keeps no stale trailing chunks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from reasonir_rag._common.progress import progress
from reasonir_rag._deps import require
from reasonir_rag.errors import ServiceUnavailableError, StorageError
from reasonir_rag.index.metadata import FORMAT_KEY, METADATA_FORMAT
from reasonir_rag.index.records import HASH_KEY, PARENT_KEY, AddStats, Record, text_hash

logger = logging.getLogger("reasonir_rag.index.store")  # its messages are the store's

VectorsFor = Callable[[list[str]], np.ndarray]  # ids -> their vectors, asked only for new or changed texts
ENCODE_SLICE = 256  # texts per encoder call: the bar moves this often; enough for length-sorted batching


class CollectionWriter:
    """Writes :func:`~reasonir_rag.index.records.build_records` output into ``collection`` (named ``name``,
    at ``where``), ``records_per_call`` records a call, retrying an unreachable server ``retries`` times."""

    def __init__(self, collection: Any, *, name: str, where: str, records_per_call: int, retries: int):
        self._collection = collection
        self._name = name
        self._where = where
        self._records_per_call = records_per_call
        self._retries = retries

    def write(self, records: dict[str, Record], stats: AddStats, vectors_for: VectorsFor, show: bool | None) -> None:
        """Write ``records`` batch by batch, counting into ``stats``; ``show=None``: a bar from 2000 records."""
        order = list(records)
        show = len(order) >= 2000 if show is None else show
        with progress(total=len(order), desc=f"indexing into {self._name}", unit="doc", show=show) as bar:
            for start in range(0, len(order), self._records_per_call):
                batch = order[start : start + self._records_per_call]
                try:
                    self._add_batch(batch, records, stats, vectors_for, bar.update)
                except (ConnectionError, StorageError) as exc:  # nothing more can be written: say how far it got
                    stored = stats.added + stats.unchanged + stats.metadata_updated
                    error = StorageError if isinstance(exc, StorageError) else ServiceUnavailableError
                    raise error(
                        f"{exc}; {stored} of the {len(order)} documents of this add() are stored. Run the same "
                        "add() again to resume: stored, unchanged documents are skipped without encoding"
                    ) from exc
        self._prune(records, stats)
        logger.info(
            "add to %r: %d new or changed, %d unchanged, %d metadata-only, %d rejected, %d duplicates, "
            "%d stale chunks removed", self._name, stats.added, stats.unchanged, stats.metadata_updated,
            stats.invalid, stats.duplicates, stats.removed,
        )

    def _prune(self, records: dict[str, Record], stats: AddStats) -> None:
        """Delete the stored chunks of each parent in ``records`` that this add did not write (replace-all).
        All chunks of a parent come in one add (``chunk_documents`` of the document)."""
        keep: dict[str, set[str]] = {}
        for doc_id, record in records.items():
            if record.parent is not None:
                keep.setdefault(record.parent, set()).add(doc_id)
        parents = list(keep)
        for start in range(0, len(parents), self._records_per_call):
            group = parents[start : start + self._records_per_call]
            got = self._server("get", self._collection.get, where={PARENT_KEY: {"$in": group}}, include=["metadatas"])
            stale = [i for i, m in zip(got["ids"], got["metadatas"] or [], strict=False)
                     if i not in keep.get(str((m or {}).get(PARENT_KEY)), ())]
            for cut in range(0, len(stale), self._records_per_call):
                self._server("delete", self._collection.delete, ids=stale[cut : cut + self._records_per_call])
            stats.removed += len(stale)
            stats.removed_ids.extend(stale)

    def _server(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        """``call(**kwargs)``, retried with backoff while the Chroma server cannot be reached (a restart);
        then a :class:`ConnectionError` naming the server. Used for idempotent calls only (get, upsert, delete)."""
        transport_error = require("httpx").TransportError
        for attempt in range(self._retries + 1):
            try:
                return call(**kwargs)
            except transport_error as exc:
                if attempt == self._retries:
                    raise ServiceUnavailableError(
                        f"the Chroma server at {self._where} did not answer ({what} in collection {self._name!r}, "
                        f"{attempt + 1} attempts): {type(exc).__name__}: {exc}"
                    ) from exc
                delay = min(8.0, 0.5 * 2**attempt)
                logger.warning("Chroma server at %s did not answer (%s, %s); retry %d of %d in %.1f s",
                               self._where, what, type(exc).__name__, attempt + 1, self._retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _add_batch(self, batch: list[str], records: dict[str, Record], stats: AddStats,
                   vectors_for: VectorsFor, advance: Callable[[int], Any]) -> None:
        """One Chroma call's worth of records: look up, encode what changed (``advance`` the bar every
        :data:`ENCODE_SLICE` texts, so a slow encoder still shows movement), upsert."""
        existing = self._server("get", self._collection.get, ids=batch, include=["metadatas"])
        stored = {i: m or {} for i, m in zip(existing["ids"], existing["metadatas"] or [], strict=False)}
        encode: list[str] = []
        meta_only: list[str] = []
        for doc_id in batch:
            record = records[doc_id]
            old = stored.get(doc_id)
            if old is None or old.get(HASH_KEY) != text_hash(record.text):
                encode.append(doc_id)
            elif old != stored_metadata(record):  # new metadata, or written before native lists / parents
                meta_only.append(doc_id)
            else:
                stats.unchanged += 1
        advance(len(batch) - len(encode))
        if encode:
            slices: list[np.ndarray] = []
            for start in range(0, len(encode), ENCODE_SLICE):
                part = encode[start : start + ENCODE_SLICE]
                slices.append(np.asarray(vectors_for(part), dtype=np.float32))
                advance(len(part))
            stats.added += self._upsert(encode, np.concatenate(slices), records, stats)
        if meta_only:
            got = self._server("get", self._collection.get, ids=meta_only, include=["embeddings"])
            by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
            vectors = np.asarray([by_id[i] for i in meta_only], dtype=np.float32)
            stats.metadata_updated += self._upsert(meta_only, vectors, records, stats)

    def _upsert(self, ids: list[str], vectors: np.ndarray, records: dict[str, Record], stats: AddStats) -> int:
        """Upsert ``ids``; when Chroma refuses the batch, one by one, rejecting only those it refuses.
        Returns how many were written."""
        vectors = np.asarray(vectors, dtype=np.float32)
        refused = (ValueError, TypeError, require("chromadb.errors").ChromaError)  # not transport errors
        try:
            self._upsert_now(ids, vectors, records)
            return len(ids)
        except refused as exc:
            logger.warning("Chroma refused a batch of %d (%s); writing it record by record", len(ids), exc)
        written = 0
        for row, doc_id in enumerate(ids):
            try:
                self._upsert_now([doc_id], vectors[row : row + 1], records)
                written += 1
            except refused as exc:
                stats.reject(doc_id, records[doc_id].origin, f"Chroma refused it: {exc}")
                stats.drop(doc_id)
                logger.warning("Chroma refused record %r: %s", doc_id, exc)
        return written

    def _upsert_now(self, ids: list[str], vectors: np.ndarray, records: dict[str, Record]) -> None:
        self._server("upsert", self._collection.upsert, ids=ids, embeddings=vectors,
                     documents=[records[i].text for i in ids], metadatas=[stored_metadata(records[i]) for i in ids])


def stored_metadata(record: Record) -> dict[str, Any]:
    """What Chroma holds for ``record``: its metadata plus the text hash, the format and the parent."""
    meta = {**record.metadata, HASH_KEY: text_hash(record.text), FORMAT_KEY: METADATA_FORMAT}
    if record.parent is not None:
        meta[PARENT_KEY] = record.parent
    return meta

"""The store's write path: records into a collection batch by batch, encoding only what is new or changed.

Each record carries a hash of its text. Before a batch is encoded its ids are looked up: an unchanged text is
skipped (a re-run costs no model time, a killed ingest resumes), a text with new metadata only is rewritten
with its stored vector, the rest is encoded and upserted. Calls to a Chroma server that cannot be reached (a
restart) are retried with backoff; when it stays away the error says how far the ingest got.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.errors import ServiceUnavailableError
from reasonir_rag.index.records import HASH_KEY, AddStats, Record, public_metadata, text_hash

logger = logging.getLogger("reasonir_rag.index.store")  # its messages are the store's

VectorsFor = Callable[[list[str]], np.ndarray]  # ids -> their vectors, asked only for new or changed texts


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
        tqdm = require("tqdm").tqdm
        with tqdm(total=len(order), desc=f"indexing into {self._name}", unit="doc", disable=not show) as bar:
            for start in range(0, len(order), self._records_per_call):
                batch = order[start : start + self._records_per_call]
                try:
                    self._add_batch(batch, records, stats, vectors_for)
                except ConnectionError as exc:
                    stored = stats.added + stats.unchanged + stats.metadata_updated
                    raise ServiceUnavailableError(
                        f"{exc}; {stored} of the {len(order)} documents of this add() are stored. Run the same "
                        "add() again to resume: stored, unchanged documents are skipped without encoding"
                    ) from exc
                bar.update(len(batch))
        logger.info(
            "add to %r: %d new or changed, %d unchanged, %d metadata-only, %d invalid, %d duplicates",
            self._name, stats.added, stats.unchanged, stats.metadata_updated, stats.invalid, stats.duplicates,
        )

    def _server(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        """``call(**kwargs)``, retried with backoff while the Chroma server cannot be reached (a restart);
        then a :class:`ConnectionError` naming the server. Used for idempotent calls only (get, upsert)."""
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
                   vectors_for: VectorsFor) -> None:
        existing = self._server("get", self._collection.get, ids=batch, include=["metadatas"])
        stored = {i: m or {} for i, m in zip(existing["ids"], existing["metadatas"] or [], strict=False)}
        encode: list[str] = []
        meta_only: list[str] = []
        for doc_id in batch:
            text, meta = records[doc_id]
            old = stored.get(doc_id)
            if old is None or old.get(HASH_KEY) != text_hash(text):
                encode.append(doc_id)
            elif public_metadata(old) != meta:
                meta_only.append(doc_id)
            else:
                stats.unchanged += 1
        if encode:
            self._upsert(encode, vectors_for(encode), records)
            stats.added += len(encode)
        if meta_only:
            got = self._server("get", self._collection.get, ids=meta_only, include=["embeddings"])
            by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
            self._upsert(meta_only, np.asarray([by_id[i] for i in meta_only], dtype=np.float32), records)
            stats.metadata_updated += len(meta_only)

    def _upsert(self, ids: list[str], vectors: np.ndarray, records: dict[str, Record]) -> None:
        texts = [records[i][0] for i in ids]
        metas = [{**records[i][1], HASH_KEY: text_hash(records[i][0])} for i in ids]
        self._server("upsert", self._collection.upsert, ids=ids, embeddings=np.asarray(vectors, dtype=np.float32),
                     documents=texts, metadatas=metas)

"""A Chroma collection tied to one encoder: idempotent, resumable ingest and cosine search.

Chroma never embeds anything here: collections are opened with ``embedding_function=None`` (chromadb
1.5 then stores no embedding-function config and never instantiates its ONNX default) and every
call passes explicit embeddings. The collection metadata records the encoder's fingerprint, so an
index is never queried with vectors from another model, prefix or pooling.

``add`` is idempotent: each record stores a hash of its text; before a batch is encoded its ids are
looked up, and unchanged texts are skipped (a re-run costs no model time, a killed ingest resumes).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.errors import (
    CollectionNotFoundError,
    EncoderMismatchError,
    InvalidInputError,
    ServiceUnavailableError,
)
from reasonir_rag.index.connection import ChromaConnection
from reasonir_rag.index.records import (
    HASH_KEY,
    AddStats,
    MetadataCleaner,
    Record,
    content_id,
    public_metadata,
    repair_unicode,
    text_hash,
)
from reasonir_rag.protocols import Encoder
from reasonir_rag.types import Document, PrefixKind, ScoredDocument

logger = logging.getLogger(__name__)

FINGERPRINT_KEY = "reasonir_fingerprint"
DEFAULT_BATCH_SIZE = 1000


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be an int >= 1, got {k!r}")
    return int(k)


def stored_fingerprint(collection: str, connection: ChromaConnection | None = None) -> dict[str, Any] | None:
    """The encoder fingerprint recorded in ``collection`` (None when it has none). Raises
    :class:`CollectionNotFoundError` when the collection is missing."""
    client, where = (connection or ChromaConnection()).open()
    errors = require("chromadb.errors")
    try:
        col = client.get_collection(collection, embedding_function=None)
    except errors.NotFoundError as exc:
        raise CollectionNotFoundError(f"collection {collection!r} does not exist at {where}") from exc
    except errors.ChromaError as exc:
        raise InvalidInputError(f"cannot open collection {collection!r} at {where}: {exc}") from exc
    raw = (col.metadata or {}).get(FINGERPRINT_KEY)
    return json.loads(raw) if raw else None


class ChromaStore:
    """A Chroma collection searched with a :class:`~reasonir_rag.encoding.encoder.ReasonIREncoder`.

    Embedded (a folder, default ``$REASONIR_CHROMA_PATH`` or ``./reasonir-chroma``) unless ``host`` or
    ``port`` is given, then a Chroma server through ``HttpClient``; ``auth_token`` (default
    ``$CHROMA_AUTH_TOKEN``) is sent as ``Authorization: Bearer``. The same settings as one value:
    ``connection=`` (:class:`~reasonir_rag.index.connection.ChromaConnection`). ``create=False`` raises
    :class:`CollectionNotFoundError` instead of creating a missing collection. While :meth:`add` writes,
    a server that cannot be reached (restarting) is retried ``retries`` times with backoff (0.5 s, 1 s,
    2 s, ... up to 8 s); then a :class:`ConnectionError` says how far the ingest got (re-run ``add``
    to resume: what is stored and unchanged is skipped without encoding).
    """

    def __init__(
        self,
        collection: str,
        *,
        encoder: Encoder,
        connection: ChromaConnection | None = None,
        path: str | Path | None = None,
        host: str | None = None,
        port: int | None = None,
        ssl: bool = False,
        auth_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int | None = None,
        show_progress: bool | None = None,
        create: bool = True,
        retries: int = 4,
    ):
        if not isinstance(collection, str) or not collection:
            raise InvalidInputError(f"collection must be a non-empty name, got {collection!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, got {retries!r}")
        self._retries = retries
        self._encoder = encoder
        self._name = collection
        self.show_progress = show_progress
        loose = ChromaConnection(path=path, host=host, port=port, ssl=ssl, auth_token=auth_token, headers=headers)
        if connection is not None and loose != ChromaConnection():
            raise InvalidInputError("give either connection= or path/host/port/ssl/auth_token/headers, not both")
        self.connection = connection or loose
        self._client, self._where = self.connection.open()
        max_batch = int(self._client.get_max_batch_size())
        self._batch_size = max(1, min(batch_size or DEFAULT_BATCH_SIZE, max_batch))
        self._clean_meta = MetadataCleaner()
        self._collection = self._open(create)

    # ------------------------------------------------------------------ opening
    def _open(self, create: bool) -> Any:
        errors = require("chromadb.errors")
        fingerprint = self._encoder.fingerprint
        try:
            if create:
                col = self._client.get_or_create_collection(
                    self._name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True)},
                )
            else:
                col = self._client.get_collection(self._name, embedding_function=None)
        except errors.NotFoundError as exc:
            raise CollectionNotFoundError(
                f"collection {self._name!r} does not exist at {self._where}; index documents into it first "
                "(reasonir-rag index ... --collection NAME)"
            ) from exc
        except errors.ChromaError as exc:
            raise InvalidInputError(f"cannot open collection {self._name!r} at {self._where}: {exc}") from exc
        self._check(col, fingerprint)
        return col

    def _check(self, col: Any, fingerprint: dict[str, Any]) -> None:
        stored_json = (col.metadata or {}).get(FINGERPRINT_KEY)
        if stored_json is None:
            if col.count() == 0:  # an empty collection made elsewhere: adopt it
                col.modify(metadata={**(col.metadata or {}), FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True)})
            else:
                raise EncoderMismatchError(
                    f"collection {self._name!r} holds {col.count()} records but no reasonir-rag encoder fingerprint, "
                    "so its vectors may come from any model; index into another collection name"
                )
        else:
            stored = json.loads(stored_json)
            current = json.loads(json.dumps(fingerprint))
            if stored != current:
                differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
                raise EncoderMismatchError(
                    f"collection {self._name!r} was indexed with encoder {stored} but this encoder is {current} "
                    f"(they differ in: {', '.join(differ)}). Search it with the encoder it was built with, or "
                    f"index with this encoder into another collection name (e.g. '{self._name}-{current.get('dim')}d')"
                )
        config = getattr(col, "configuration", None) or {}
        for index in ("hnsw", "spann"):
            space = (config.get(index) or {}).get("space")
            if space and space != "cosine":
                raise InvalidInputError(
                    f"collection {self._name!r} uses {space!r} distance; reasonir-rag needs cosine "
                    "(scores are 1 - distance): use another collection name"
                )

    # ------------------------------------------------------------------ facts
    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @property
    def collection_name(self) -> str:
        return self._name

    @property
    def client(self) -> Any:
        return self._client

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def count(self) -> int:
        return int(self._collection.count())

    def __repr__(self) -> str:
        return f"ChromaStore({self._name!r}, at={self._where!r}, encoder={self._encoder!r})"

    # ------------------------------------------------------------------ writing
    def add(
        self,
        texts_or_documents: Sequence[str | Document] | str | Document,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        show_progress: bool | None = None,
    ) -> AddStats:
        """Index texts or :class:`Document` s; return what happened, with the ids now in the index (input order).

        Ids: ``ids``, else each Document's id, else :func:`content_id` of the text. Unchanged texts are
        skipped without encoding; empty, whitespace-only and non-string texts are skipped with a warning
        naming them (the rest is indexed). Repeated ids within one call: the last one wins.
        """
        if texts_or_documents is None:
            raise InvalidInputError("add() needs a list of strings or Documents, got None")
        items = [texts_or_documents] if isinstance(texts_or_documents, (str, Document)) else list(texts_or_documents)
        stats, records = self._records(items, ids, metadatas)

        def encode(todo: list[str]) -> np.ndarray:
            return self._encoder.encode_documents([records[i][0] for i in todo], show_progress=False)

        self._write(records, stats, encode, show_progress)
        return stats

    def add_embeddings(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: Any,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> AddStats:
        """Index vectors computed elsewhere (bulk actors, a parquet export) with their texts; nothing is encoded.

        The vectors must come from an encoder with this collection's fingerprint (a store opened with
        :class:`~reasonir_rag.encoding.recorded.RecordedEncoder` says which). Unchanged texts are skipped as
        in :meth:`add`; the checks on ids, texts and metadata are the same, and each vector must be finite
        with the collection's dimensions.
        """
        if ids is None or isinstance(ids, str) or texts is None or isinstance(texts, str):
            raise InvalidInputError("add_embeddings() takes lists of ids and texts")
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (len(texts), self._encoder.dim):
            raise InvalidInputError(f"vectors must be ({len(texts)}, {self._encoder.dim}) for {len(texts)} texts, "
                                    f"got shape {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise InvalidInputError("vectors hold NaN or infinite values")
        stats, records = self._records(list(texts), ids, metadatas)
        by_id = dict(zip(ids, matrix, strict=True))  # the last of a repeated id wins, as in records
        self._write(records, stats, lambda todo: np.stack([by_id[i] for i in todo]), None)
        return stats

    def _records(self, items: list[Any], ids: Sequence[str] | None,
                 metadatas: Sequence[Mapping[str, Any] | None] | None) -> tuple[AddStats, dict[str, Record]]:
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
            records[doc_id] = (text, self._clean_meta(meta))
        if invalid:
            stats.invalid = len(invalid)
            shown = ", ".join(invalid[:10]) + (f" and {len(invalid) - 10} more" if len(invalid) > 10 else "")
            logger.warning("skipped %d empty or non-string text(s): %s", len(invalid), shown)
        if stats.duplicates:
            logger.warning("%d repeated id(s) in one add(); the last occurrence of each was kept", stats.duplicates)
        stats.ids = [i for i in first_seen if i in records]
        return stats, records

    def _write(self, records: dict[str, Record], stats: AddStats, vectors_for: Callable[[list[str]], np.ndarray],
               show_progress: bool | None) -> None:
        """Write ``records`` batch by batch; ``vectors_for(ids)`` is asked only for new or changed texts."""
        order = list(records)
        show = self.show_progress if show_progress is None else show_progress
        show = len(order) >= 2000 if show is None else show
        tqdm = require("tqdm").tqdm
        with tqdm(total=len(order), desc=f"indexing into {self._name}", unit="doc", disable=not show) as bar:
            for start in range(0, len(order), self._batch_size):
                batch = order[start : start + self._batch_size]
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
                   vectors_for: Callable[[list[str]], np.ndarray]) -> None:
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

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these ids (missing ones are ignored)."""
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        for start in range(0, len(ids), self._batch_size):
            self._collection.delete(ids=ids[start : start + self._batch_size])

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents for ``ids``, in that order; missing ids are left out."""
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        found: dict[str, Document] = {}
        for start in range(0, len(ids), self._batch_size):
            got = self._collection.get(ids=ids[start : start + self._batch_size], include=["documents", "metadatas"])
            for doc_id, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                found[doc_id] = Document(doc_id, text, public_metadata(meta))
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def iter_documents(self, page_size: int = 5000) -> Iterator[Document]:
        """Every stored document, page by page (for BM25 over the same corpus, exports, fingerprints)."""
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidInputError(f"page_size must be an int >= 1, got {page_size!r}")
        offset = 0
        while True:
            got = self._collection.get(include=["documents", "metadatas"], limit=page_size, offset=offset)
            for doc_id, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                yield Document(doc_id, text, public_metadata(meta))
            if len(got["ids"]) < page_size:
                return
            offset += page_size

    # ------------------------------------------------------------------ searching
    def search(
        self,
        query: str,
        k: int = 10,
        *,
        task: str | None = None,
        instruction: str | None = None,
        where: Mapping[str, Any] | None = None,
        prefix_kind: PrefixKind = "query",
    ) -> list[ScoredDocument]:
        """The ``k`` nearest documents to ``query`` (encoded with the query prefix), best first.

        ``score`` is the cosine similarity. ``task`` picks a BRIGHT task's instruction. ``where`` is a
        Chroma metadata filter. An empty collection gives ``[]``; ``k`` above the count gives fewer.
        ``prefix_kind="document"`` encodes the text like a stored passage instead: a HyDE rewrite is a
        hypothetical passage, so it is compared in document space (see ``Rewrite.prefix_kind``).
        """
        if not isinstance(query, str):
            raise InvalidInputError(
                f"search() takes one query string, got {type(query).__name__}; use search_many() for several"
            )
        return self.search_many([query], k, task=task, instruction=instruction, where=where,
                                prefix_kind=prefix_kind)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        task: str | None = None,
        instruction: str | None = None,
        where: Mapping[str, Any] | None = None,
        prefix_kind: PrefixKind = "query",
    ) -> list[list[ScoredDocument]]:
        """:meth:`search` for several queries: one encoder call and one Chroma query for all."""
        k = _check_k(k)
        if queries is None or isinstance(queries, str):
            raise InvalidInputError("search_many() takes a list of query strings")
        if prefix_kind not in ("query", "document"):
            raise InvalidInputError(f"prefix_kind must be 'query' or 'document', got {prefix_kind!r}")
        queries = list(queries)
        if not queries:
            return []
        if prefix_kind == "document":
            vectors = self._encoder.encode_documents(queries)
        else:
            vectors = self._encoder.encode_queries(queries, instruction=instruction, task=task)
        return self._query(vectors, k, where)

    def search_by_vector(
        self,
        vector: Sequence[float] | np.ndarray,
        k: int = 10,
        where: Mapping[str, Any] | None = None,
    ) -> list[ScoredDocument]:
        """Nearest documents to an already-encoded query vector (made with this store's encoder)."""
        k = _check_k(k)
        vec = np.asarray(vector, dtype=np.float32)
        if vec.ndim != 1 or vec.shape[0] != self._encoder.dim:
            raise InvalidInputError(f"expected one vector of {self._encoder.dim} dims, got shape {vec.shape}")
        if not np.isfinite(vec).all():
            raise InvalidInputError("the query vector holds NaN or infinite values")
        return self._query(vec[None, :], k, where)[0]

    def _query(self, vectors: np.ndarray, k: int, where: Mapping[str, Any] | None) -> list[list[ScoredDocument]]:
        count = self.count()
        if count == 0:
            return [[] for _ in range(len(vectors))]
        got = self._collection.query(
            query_embeddings=np.asarray(vectors, dtype=np.float32),
            n_results=min(k, count),
            where=dict(where) if where else None,
            include=["documents", "metadatas", "distances"],
        )
        results: list[list[ScoredDocument]] = []
        for q in range(len(vectors)):
            hits = [
                ScoredDocument(doc_id, text, public_metadata(meta), float(1.0 - dist))
                for doc_id, text, meta, dist in zip(
                    got["ids"][q], got["documents"][q], got["metadatas"][q], got["distances"][q], strict=True
                )
            ]
            hits.sort(key=lambda h: h.score, reverse=True)
            results.append(hits)
        return results

"""A Chroma collection tied to one encoder: idempotent, resumable ingest and cosine search.

Chroma never embeds anything here: every call passes explicit embeddings. The collection metadata records
the encoder's fingerprint, so an index is never queried with vectors from another model, prefix or pooling
(opening and those checks: ``collections.py``).

``add`` is idempotent: each record stores a hash of its text; before a batch is encoded its ids are
looked up, and unchanged texts are skipped (a re-run costs no model time, a killed ingest resumes). What an
add was given becomes records in ``records.py``; they are written, with retries, in ``writes.py``. This module
is the class users hold, its reads and its searches. Every Chroma call goes through ``storage.py``: a folder or
disk that cannot take writes is a ``StorageError`` naming it, and no error carries a secret a server echoed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.index.collections import (
    FINGERPRINT_KEY,
    check_collection_name,
    open_collection,
    stored_fingerprint,
)
from reasonir_rag.index.connection import ChromaConnection
from reasonir_rag.index.records import (
    HASH_KEY,
    AddStats,
    MetadataNormaliser,
    Record,
    SourcedDocument,
    as_list,
    build_records,
    content_id,
    public_metadata,
    text_hash,
)
from reasonir_rag.index.storage import CheckedCollection, chroma_errors
from reasonir_rag.index.writes import CollectionWriter
from reasonir_rag.protocols import Encoder
from reasonir_rag.types import Document, PrefixKind, ScoredDocument

DEFAULT_RECORDS_PER_CALL = 1000

__all__ = [  # the record and collection names are re-exported: callers import them from here
    "DEFAULT_RECORDS_PER_CALL", "FINGERPRINT_KEY", "AddStats", "ChromaStore", "SourcedDocument", "content_id",
    "stored_fingerprint",
]


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be an int >= 1, got {k!r}")
    return int(k)


class ChromaStore:
    """A Chroma collection searched with a :class:`~reasonir_rag.encoding.encoder.ReasonIREncoder`.

    Embedded (a folder, default ``$REASONIR_CHROMA_PATH`` or ``./reasonir-chroma``) unless ``host`` or
    ``port`` is given, then a Chroma server through ``HttpClient`` with Chroma's own client auth (token or basic,
    from ``$CHROMA_CLIENT_AUTH_CREDENTIALS`` and its sibling variables, or ``connection=ChromaConnection(
    auth_provider=..., auth_credentials=..., auth_header=...)``); ``auth_token`` / ``$CHROMA_AUTH_TOKEN`` is the
    deprecated alias of a Bearer token. The same settings as one value: ``connection=``
    (:class:`~reasonir_rag.index.connection.ChromaConnection`). ``create=False`` raises
    :class:`CollectionNotFoundError` instead of creating a missing collection. While :meth:`add` writes,
    a server that cannot be reached (restarting) is retried ``retries`` times with backoff (0.5 s, 1 s,
    2 s, ... up to 8 s); then a :class:`ConnectionError` says how far the ingest got (re-run ``add``
    to resume: what is stored and unchanged is skipped without encoding). ``records_per_call`` bounds each
    Chroma read and write (at most the server's max batch size); the encoder's ``batch_size`` is its own.
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
        records_per_call: int | None = None,
        show_progress: bool | None = None,
        create: bool = True,
        retries: int = 4,
    ):
        check_collection_name(collection)  # before the client opens (and creates) a folder
        if records_per_call is not None and (isinstance(records_per_call, bool) or records_per_call < 1):
            raise InvalidInputError(f"records_per_call must be >= 1, got {records_per_call!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, got {retries!r}")
        self._encoder = encoder
        self._name = collection
        self.show_progress = show_progress
        loose = ChromaConnection(path=path, host=host, port=port, ssl=ssl, auth_token=auth_token, headers=headers)
        if connection is not None and loose != ChromaConnection():
            raise InvalidInputError("give either connection= or path/host/port/ssl/auth_token/headers, not both")
        self.connection = connection or loose
        self._client, self._where = self.connection.open()
        folder = self.connection.folder
        with chroma_errors(self._where, folder, "asking Chroma its batch size"):
            max_batch = int(self._client.get_max_batch_size())
        self._records_per_call = max(1, min(records_per_call or DEFAULT_RECORDS_PER_CALL, max_batch))
        self._clean_meta = MetadataNormaliser()
        collection = open_collection(self._client, self._name, self._where, self._encoder.fingerprint,
                                     create=create, folder=folder)
        self._collection = CheckedCollection(collection, name=self._name, where=self._where, folder=folder)
        self._writer = CollectionWriter(self._collection, name=self._name, where=self._where,
                                        records_per_call=self._records_per_call, retries=retries)

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
    def records_per_call(self) -> int:
        return self._records_per_call

    def count(self) -> int:
        return int(self._collection.count())

    def __repr__(self) -> str:
        return f"ChromaStore({self._name!r}, at={self._where!r}, encoder={self._encoder!r})"

    def describe(self) -> dict[str, Any]:
        """What a run record names the store by: collection, where, the encoder's fingerprint, the count."""
        return {"type": "ChromaStore", "collection": self._name, "where": self._where,
                "encoder": dict(self._encoder.fingerprint), "documents": self.count()}

    def content_fingerprint(self, page_size: int = 5000) -> dict[str, Any]:
        """Count and sha256 over every (id, text sha256), order-independent, as
        :func:`~reasonir_rag.eval.report.corpus_fingerprint` computes it from documents; read from the text
        hash kept beside each record (the text itself only for records written without one)."""
        rows: list[tuple[str, str]] = []
        offset = 0
        while True:
            got = self._collection.get(include=["metadatas"], limit=page_size, offset=offset)
            hashes = {i: (meta or {}).get(HASH_KEY) for i, meta in zip(got["ids"], got["metadatas"], strict=True)}
            unhashed = [i for i, hashed in hashes.items() if not hashed]
            if unhashed:
                found = self._collection.get(ids=unhashed, include=["documents"])
                hashes.update(zip(found["ids"], map(text_hash, found["documents"]), strict=True))
            rows.extend((doc_id, str(hashed)) for doc_id, hashed in hashes.items())
            if len(got["ids"]) < page_size:
                break
            offset += page_size
        digest = hashlib.sha256()
        for doc_id, hashed in sorted(rows):
            digest.update(f"{doc_id}\0{hashed}\n".encode())
        return {"documents": len(rows), "sha256": digest.hexdigest()}

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
        skipped without encoding. A record that cannot be stored (empty or non-string text or id, a lone
        surrogate, a metadata key or value the type policy in ``metadata.py`` rejects) is rejected alone and
        named in ``AddStats.rejected``; the rest is indexed. Repeated ids within one call: the FIRST one is kept
        (``AddStats.duplicate_ids``). The chunks of one document (:class:`SourcedDocument` ``parent``, as
        :func:`~reasonir_rag.index.chunking.chunk_documents` makes them) replace all its stored chunks: those
        the new version no longer has are deleted, so all of a document's chunks must come in one call.
        """
        if texts_or_documents is None:
            raise InvalidInputError("add() needs a list of strings or Documents, got None")
        if isinstance(texts_or_documents, (str, Document)):
            items: list[Any] = [texts_or_documents]
        else:
            items = as_list("add()", "texts_or_documents", texts_or_documents, "strings or Documents")
        stats, records = build_records(items, ids, metadatas, self._clean_meta)

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
        if ids is None or texts is None:
            raise InvalidInputError("add_embeddings() takes lists of ids and texts")
        ids = as_list("add_embeddings()", "ids", ids, "one string per text")
        texts = as_list("add_embeddings()", "texts", texts, "one string per id")
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (len(texts), self._encoder.dim):
            raise InvalidInputError(f"vectors must be ({len(texts)}, {self._encoder.dim}) for {len(texts)} texts, "
                                    f"got shape {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise InvalidInputError("vectors hold NaN or infinite values")
        stats, records = build_records(texts, ids, metadatas, self._clean_meta, "add_embeddings()")
        by_id: dict[str, np.ndarray] = {}
        for doc_id, row in zip(ids, matrix, strict=True):
            by_id.setdefault(doc_id, row)  # the first of a repeated id is kept, as in records
        self._write(records, stats, lambda todo: np.stack([by_id[i] for i in todo]), None)
        return stats

    def _write(self, records: dict[str, Record], stats: AddStats, vectors_for: Callable[[list[str]], np.ndarray],
               show_progress: bool | None) -> None:
        self._writer.write(records, stats, vectors_for, self.show_progress if show_progress is None else show_progress)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these ids (missing ones are ignored)."""
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        for start in range(0, len(ids), self._records_per_call):
            self._collection.delete(ids=ids[start : start + self._records_per_call])

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents for ``ids``, in that order; missing ids are left out."""
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        found: dict[str, Document] = {}
        step = self._records_per_call
        for start in range(0, len(ids), step):
            got = self._collection.get(ids=ids[start : start + step], include=["documents", "metadatas"])
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

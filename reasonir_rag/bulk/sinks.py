"""Where bulk embeddings go: a folder of parquet parts, or a Chroma collection; and what a sink already holds.

Parquet parts are written under a temporary name and renamed whole, so a killed run never leaves half a file;
the folder records the encoder's fingerprint, and writing another encoder's vectors into it fails.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.errors import EncoderMismatchError
from reasonir_rag.index.connection import ChromaConnection
from reasonir_rag.index.records import HASH_KEY, text_hash

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "_fingerprint.json"


@dataclass(frozen=True)
class ParquetSink:
    """A folder of parquet parts: ``id``, ``text``, ``metadata`` (JSON), ``text_sha256``, ``embedding``."""

    path: str

    def describe(self) -> str:
        return f"parquet folder {self.path}"


@dataclass(frozen=True, init=False)
class ChromaSink:
    """A Chroma collection: ``ChromaSink("papers", host=..., port=...)`` (a server), ``path=...`` (an embedded
    folder), or ``connection=`` a :class:`~reasonir_rag.index.connection.ChromaConnection`; the settings are
    ChromaConnection's (``auth_token`` and ``headers`` included)."""

    collection: str
    connection: ChromaConnection

    def __init__(self, collection: str, connection: ChromaConnection | None = None, **settings: Any):
        if connection is not None and settings:
            raise ValueError(f"give either connection= or {', '.join(sorted(settings))}, not both")
        object.__setattr__(self, "collection", collection)
        object.__setattr__(self, "connection", connection or ChromaConnection(**settings))

    def describe(self) -> str:
        return f"Chroma collection {self.collection!r} at {self.connection.describe()}"


def write_parquet_part(folder: str | Path, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]],
                       vectors: np.ndarray, fingerprint: dict[str, Any]) -> Path:
    """One part file of a :class:`ParquetSink`, written under a temporary name and renamed whole."""
    pa = require("pyarrow")
    pq = require("pyarrow.parquet")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _check_parquet_fingerprint(folder, fingerprint)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    table = pa.table({
        "id": pa.array(ids, pa.string()),
        "text": pa.array(texts, pa.string()),
        "metadata": pa.array([json.dumps(m, ensure_ascii=False, default=str) for m in metadatas], pa.string()),
        "text_sha256": pa.array([text_hash(t) for t in texts], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
    })
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, folder / name)
    return folder / name


def _check_parquet_fingerprint(folder: Path, fingerprint: dict[str, Any]) -> None:
    path = folder / FINGERPRINT_FILE
    if not path.exists():
        tmp = folder / f".{FINGERPRINT_FILE}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(fingerprint, sort_keys=True))
        os.replace(tmp, path)
        return
    stored = json.loads(path.read_text())
    if stored != json.loads(json.dumps(fingerprint)):
        raise EncoderMismatchError(f"{folder} holds embeddings from encoder {stored}, not {fingerprint}; "
                                   "write into another folder")


# ---------------------------------------------------------------------------------------------- the sink's state
def existing_ids(sink: ParquetSink | ChromaSink, client: Any = None) -> dict[str, str | None]:
    """What the sink already holds: id -> text hash (None where unknown)."""
    if isinstance(sink, ParquetSink):
        folder = Path(sink.path)
        parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        if not parts:
            return {}
        pq = require("pyarrow.parquet")
        done: dict[str, str | None] = {}
        for part in parts:
            table = pq.read_table(part, columns=["id", "text_sha256"])
            done.update(zip(table.column("id").to_pylist(), table.column("text_sha256").to_pylist(), strict=True))
        return done

    errors = require("chromadb.errors")
    if client is None:
        client, _ = sink.connection.open()
    try:
        col = client.get_collection(sink.collection, embedding_function=None)
    except errors.NotFoundError:
        return {}
    done = {}
    offset, page = 0, 5000
    while True:
        got = col.get(include=["metadatas"], limit=page, offset=offset)
        for doc_id, meta in zip(got["ids"], got["metadatas"] or [None] * len(got["ids"]), strict=True):
            done[doc_id] = (meta or {}).get(HASH_KEY)
        if len(got["ids"]) < page:
            return done
        offset += page


def read_parquet_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Ids and vectors from a :class:`ParquetSink` folder, one row per id (for loading into another index).

    A batch that a crashed driver still had in flight can land after the resumed run re-did it: its rows
    repeat ids with the same text and vector; the first of each id is kept.
    """
    pq = require("pyarrow.parquet")
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    for part in sorted(Path(path).glob("part-*.parquet")):
        table = pq.read_table(part, columns=["id", "embedding"])
        ids.extend(table.column("id").to_pylist())
        emb = table.column("embedding").combine_chunks()
        vectors.append(emb.flatten().to_numpy().reshape(len(emb), -1))
    if not ids:
        return [], np.zeros((0, 0), dtype=np.float32)
    first = list({doc_id: i for i, doc_id in reversed(list(enumerate(ids)))}.values())
    first.sort()
    if len(first) < len(ids):
        logger.info("%s: %d repeated id(s) from a re-done batch; kept one row each", path, len(ids) - len(first))
    return [ids[i] for i in first], np.concatenate(vectors).astype(np.float32)[first]

"""The stages of a bulk run, as Ray Data runs them on its workers, one batch (a pyarrow table) at a time.

``prepare`` gives each row its id, text hash and a status (``todo``, ``skip``: already in the sink, ``invalid``);
``EncodeActor`` (one model per actor, per GPU) embeds the ``todo`` rows and passes the others through, one
failing text failing alone; ``write_parquet`` and ``ChromaWriter`` / ``write_chroma`` write the encoded rows and
hand back a summary of each row's status for the driver to count.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.bulk.sinks import ChromaSink, ParquetSink, write_parquet_part
from reasonir_rag.bulk.specs import EncoderSpec, load_encoder
from reasonir_rag.encoding.recorded import RecordedEncoder
from reasonir_rag.index.records import content_id, text_hash

logger = logging.getLogger("reasonir_rag.bulk.ray_embed")  # its messages are the bulk run's

# statuses each row carries through the pipeline
TODO, SKIP, INVALID, ENCODED, FAILED = "todo", "skip", "invalid", "encoded", "failed"


def prepare(batch: Any, *, id_field: str, text_field: str, metadata_fields: list[str] | None,
             done_ref: list[Any], compare_hash: bool) -> Any:
    """Ids, text hashes and a status per row: ``todo``, ``skip`` (already in the sink) or ``invalid``."""
    pa = require("pyarrow")
    ray = require("ray")
    done: dict[str, str | None] = _cached_get(ray, done_ref[0])
    columns = batch.column_names
    texts = batch.column(text_field).to_pylist() if text_field in columns else [None] * batch.num_rows
    ids_in = batch.column(id_field).to_pylist() if id_field in columns else [None] * batch.num_rows
    meta_cols = [c for c in columns if c not in (id_field, text_field)] if metadata_fields is None else [
        c for c in metadata_fields if c in columns]
    meta_values = {c: batch.column(c).to_pylist() for c in meta_cols}
    out: dict[str, list[Any]] = {"id": [], "text": [], "metadata": [], "hash": [], "status": []}
    for i, text in enumerate(texts):
        raw_id = ids_in[i]
        valid = isinstance(text, str) and bool(text.strip())
        doc_id = str(raw_id) if raw_id not in (None, "") else (content_id(text) if valid else "(no id)")
        digest = text_hash(text) if valid else ""
        if not valid:
            status = INVALID
        elif doc_id in done and (not compare_hash or done[doc_id] == digest):
            status = SKIP
        else:
            status = TODO
        meta = {c: meta_values[c][i] for c in meta_cols if meta_values[c][i] is not None}
        out["id"].append(doc_id)
        out["text"].append(text if status == TODO else None)
        out["metadata"].append(json.dumps(meta, ensure_ascii=False, default=str) if status == TODO else None)
        out["hash"].append(digest)
        out["status"].append(status)
    return pa.table({k: pa.array(v, type=pa.string()) for k, v in out.items()})


_GOT: dict[Any, Any] = {}


def _cached_get(ray: Any, ref: Any) -> Any:
    """The done-map is fetched once per worker process, not once per batch."""
    key = ref.hex() if hasattr(ref, "hex") else id(ref)
    if key not in _GOT:
        _GOT.clear()
        _GOT[key] = ray.get(ref)
    return _GOT[key]


class EncodeActor:
    """One model per actor (per GPU): embeds the ``todo`` rows of each batch, passes the others through."""

    def __init__(self, spec: EncoderSpec):
        torch = _optional("torch")
        device = "cuda" if torch is not None and torch.cuda.is_available() else None
        self.encoder = load_encoder(spec, device=device)
        self.fingerprint = json.dumps(self.encoder.fingerprint, sort_keys=True)
        self.broken: str | None = None

    def __call__(self, batch: Any) -> Any:
        pa = require("pyarrow")
        status = batch.column("status").to_pylist()
        texts = batch.column("text").to_pylist()
        todo = [i for i, s in enumerate(status) if s == TODO]
        errors: list[str | None] = [None] * len(status)
        vectors: list[np.ndarray] = []
        for i, outcome in zip(todo, self._encode([texts[i] for i in todo]), strict=True):
            if isinstance(outcome, str):
                status[i], errors[i] = FAILED, outcome
            else:
                status[i] = ENCODED
                vectors.append(outcome)
        dim = len(vectors[0]) if vectors else 0
        offsets = np.zeros(len(status) + 1, dtype=np.int32)
        for i, s in enumerate(status):
            offsets[i + 1] = offsets[i] + (dim if s == ENCODED else 0)
        flat = np.concatenate(vectors) if vectors else np.zeros(0, dtype=np.float32)
        embedding = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat),
                                             mask=pa.array([s != ENCODED for s in status]))
        table = batch.set_column(batch.schema.get_field_index("status"), "status", pa.array(status, pa.string()))
        table = table.append_column("embedding", embedding).append_column("error", pa.array(errors, pa.string()))
        fingerprint = [self.fingerprint if s == ENCODED else None for s in status]
        return table.append_column("fingerprint", pa.array(fingerprint, pa.string()))

    def _encode(self, texts: list[str]) -> list[np.ndarray | str]:
        """A vector or an error message per text. A failing batch is retried text by text, so one bad text fails
        alone and the rest of its batch is still written; when every text of a batch fails, the encoder itself
        is broken and later batches are not tried (the run drains fast and reports them)."""
        if not texts:
            return []
        if self.broken:
            return [self.broken] * len(texts)
        try:
            return list(np.asarray(self.encoder.encode_documents(texts, show_progress=False), dtype=np.float32))
        except Exception as exc:  # reported per text, never lost
            first = f"{type(exc).__name__}: {exc}"
        logger.warning("encoding a batch of %d failed (%s); retrying text by text", len(texts), first)
        outcomes: list[np.ndarray | str] = [self._encode_alone(t) for t in texts] if len(texts) > 1 else [first]
        if len(texts) > 1 and all(isinstance(o, str) for o in outcomes):
            self.broken = f"not tried: the encoder failed on every text of an earlier batch ({first})"
        return outcomes

    def _encode_alone(self, text: str) -> np.ndarray | str:
        try:
            return np.asarray(self.encoder.encode_documents([text], show_progress=False), dtype=np.float32)[0]
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"


def encoded_rows(batch: Any) -> tuple[list[str], list[str], list[dict[str, Any]], np.ndarray, str]:
    """The encoded rows of a batch: ids, texts, metadatas, vectors and the encoder fingerprint."""
    status = batch.column("status").to_pylist()
    rows = [i for i, s in enumerate(status) if s == ENCODED]
    if not rows:
        return [], [], [], np.zeros((0, 0), dtype=np.float32), ""
    pick = batch.take(rows)
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in pick.column("embedding").to_numpy(
        zero_copy_only=False)])
    metas = [json.loads(m) if m else {} for m in pick.column("metadata").to_pylist()]
    return (pick.column("id").to_pylist(), pick.column("text").to_pylist(), metas, vectors,
            pick.column("fingerprint")[0].as_py())


def summary(batch: Any) -> Any:
    pa = require("pyarrow")
    return pa.table({"id": batch.column("id"), "status": batch.column("status"), "error": batch.column("error")})


def write_chroma(sink: ChromaSink, batch: Any, stores: dict[str, Any]) -> None:
    ids, texts, metas, vectors, fingerprint = encoded_rows(batch)
    if not ids:
        return
    from reasonir_rag.index.store import ChromaStore

    store = stores.get(fingerprint)
    if store is None:
        encoder = RecordedEncoder(json.loads(fingerprint))
        store = stores[fingerprint] = ChromaStore(sink.collection, encoder=encoder, connection=sink.connection)
    store.add_embeddings(ids, texts, vectors, metas)


class ChromaWriter:
    """A writer actor for a Chroma server: one client, many batches."""

    def __init__(self, sink: ChromaSink):
        self.sink = sink
        self.stores: dict[str, Any] = {}

    def __call__(self, batch: Any) -> Any:
        write_chroma(self.sink, batch, self.stores)
        return summary(batch)


def write_parquet(batch: Any, *, sink: ParquetSink) -> Any:
    ids, texts, metas, vectors, fingerprint = encoded_rows(batch)
    if ids:
        write_parquet_part(sink.path, ids, texts, metas, vectors, json.loads(fingerprint))
    return summary(batch)


def _optional(name: str) -> Any:
    try:
        return require(name)
    except ImportError:
        return None

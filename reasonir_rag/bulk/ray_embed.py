"""Bulk corpus embedding on a Ray cluster: one encoder actor per GPU, resumable by ids.

The pipeline is Ray Data's: read (jsonl / parquet / a list) -> prepare (ids, text hashes, skip what the sink
already holds) -> ``map_batches`` with an encoder actor pool (``num_gpus=1`` each, one per GPU; on CPU
``num_cpus`` actors) -> write. Each actor loads the model itself from a picklable *spec*, never from
weights shipped by the driver: ``("path/or/hub-id", {kwargs})`` as :meth:`ReasonIREncoder.load_spec`
returns, ``"openai:MODEL@URL"`` for a served model (:mod:`reasonir_rag.encoding.served`), or a picklable
zero-argument factory.

Sinks: :class:`ParquetSink` (a folder of ``part-*.parquet`` files, each written whole then renamed, so a
killed run never leaves half a file) and :class:`ChromaSink` (a Chroma server, written by writer actors
through :class:`~reasonir_rag.index.store.ChromaStore`, or an embedded folder, written by the driver). Before
encoding, the ids already in the sink are skipped (for Chroma: same id and same text hash, as
``ChromaStore.add`` does), so a killed run resumes with nothing lost and nothing encoded twice. Ids are
assumed unique in the source.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.bulk.sinks import ChromaSink, ParquetSink, existing_ids, write_parquet_part
from reasonir_rag.encoding.recorded import RecordedEncoder
from reasonir_rag.errors import BulkEmbeddingError, DataNotFoundError, InvalidInputError
from reasonir_rag.index.records import content_id, text_hash
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

EncoderSpec = Any  # (name_or_path, kwargs) | str | Callable[[], encoder]

# statuses each row carries through the pipeline
TODO, SKIP, INVALID, ENCODED, FAILED = "todo", "skip", "invalid", "encoded", "failed"


@dataclass
class BulkResult:
    """What one :func:`embed_corpus_with_ray` run did (counted from the rows that reached the sink)."""

    encoded: int = 0  # texts the encoder actors embedded in this run (all of them were written)
    skipped: int = 0  # already in the sink: no model time spent
    invalid: int = 0  # empty or non-string texts, left out with a warning
    invalid_ids: list[str] = field(default_factory=list)
    failed: int = 0  # texts the encoder raised on (not written; a rerun tries them again)
    failures: dict[str, str] = field(default_factory=dict)  # id -> error, the first 100
    seconds: float = 0.0
    sink: str = ""


# ---------------------------------------------------------------------------------------------- encoder specs
def load_encoder(spec: EncoderSpec, *, device: str | None = None) -> Any:
    """Build the encoder a spec names (inside an actor: each process loads its own model once)."""
    if callable(spec) and not isinstance(spec, (str, tuple, list)):
        return spec()
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1] or {}))
    if isinstance(name, str) and name.startswith("openai:"):
        from reasonir_rag.encoding.served import from_spec

        return from_spec(name, **kwargs)
    from reasonir_rag.encoding.encoder import shared_encoder

    if device is not None:
        kwargs.setdefault("device", device)
    return shared_encoder(name, **kwargs)


def _portable_spec(spec: EncoderSpec) -> EncoderSpec:
    """A spec the actors can rebuild from: an encoder object becomes its own ``load_spec()``."""
    if hasattr(spec, "load_spec") and hasattr(spec, "encode_documents"):
        return spec.load_spec()
    if isinstance(spec, (str, tuple, list)) or callable(spec):
        return spec
    raise InvalidInputError(
        f"encoder_spec must be (name_or_path, kwargs), a string, an encoder or a factory; got {spec!r}")


# ---------------------------------------------------------------------------------------------- pipeline stages
def _prepare(batch: Any, *, id_field: str, text_field: str, metadata_fields: list[str] | None,
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


class _EncodeActor:
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


def _encoded_rows(batch: Any) -> tuple[list[str], list[str], list[dict[str, Any]], np.ndarray, str]:
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


def _summary(batch: Any) -> Any:
    pa = require("pyarrow")
    return pa.table({"id": batch.column("id"), "status": batch.column("status"), "error": batch.column("error")})


def _write_chroma(sink: ChromaSink, batch: Any, stores: dict[str, Any]) -> None:
    ids, texts, metas, vectors, fingerprint = _encoded_rows(batch)
    if not ids:
        return
    from reasonir_rag.index.store import ChromaStore

    store = stores.get(fingerprint)
    if store is None:
        encoder = RecordedEncoder(json.loads(fingerprint))
        store = stores[fingerprint] = ChromaStore(sink.collection, encoder=encoder, connection=sink.connection)
    store.add_embeddings(ids, texts, vectors, metas)


class _ChromaWriter:
    """A writer actor for a Chroma server: one client, many batches."""

    def __init__(self, sink: ChromaSink):
        self.sink = sink
        self.stores: dict[str, Any] = {}

    def __call__(self, batch: Any) -> Any:
        _write_chroma(self.sink, batch, self.stores)
        return _summary(batch)


def _write_parquet(batch: Any, *, sink: ParquetSink) -> Any:
    ids, texts, metas, vectors, fingerprint = _encoded_rows(batch)
    if ids:
        write_parquet_part(sink.path, ids, texts, metas, vectors, json.loads(fingerprint))
    return _summary(batch)


# ---------------------------------------------------------------------------------------------- reading
def _read_source(ray: Any, source: Any, text_field: str, batch_size: int) -> Any:
    if isinstance(source, ray.data.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DataNotFoundError(f"no corpus at {path}")
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        parquet = [str(p) for p in files if p.suffix == ".parquet"]
        jsonl = [str(p) for p in files if p.name.endswith((".jsonl", ".jsonl.gz", ".json"))]
        if parquet and not jsonl:
            return ray.data.read_parquet(parquet)
        if jsonl and not parquet:
            return ray.data.read_json(jsonl, lines=True)
        raise InvalidInputError(f"{path}: expected .jsonl(.gz) or .parquet files (one kind), found "
                         f"{len(jsonl)} jsonl and {len(parquet)} parquet")
    if isinstance(source, Iterable):
        rows = []
        for item in source:
            if isinstance(item, Document):
                rows.append({"id": item.id, text_field: item.text, **dict(item.metadata)})
            elif isinstance(item, str):
                rows.append({text_field: item})
            elif isinstance(item, Mapping):
                rows.append(dict(item))
            else:
                raise InvalidInputError(f"source items must be Documents, dicts or strings; got {type(item).__name__}")
        if not rows:
            raise InvalidInputError("the source holds no documents")
        return ray.data.from_items(rows, override_num_blocks=max(1, min(200, -(-len(rows) // batch_size))))
    raise InvalidInputError(f"source must be a path, a list of documents or a ray Dataset; got {type(source).__name__}")


def _optional(name: str) -> Any:
    try:
        return require(name)
    except ImportError:
        return None


# ---------------------------------------------------------------------------------------------- the entry point
def embed_corpus_with_ray(
    source: Any,
    *,
    encoder_spec: EncoderSpec,
    sink: ParquetSink | ChromaSink | str,
    id_field: str = "id",
    text_field: str = "text",
    metadata_fields: list[str] | None = None,
    batch_size: int = 64,
    num_actors: int | None = None,
    num_cpus_per_actor: float = 1,
    writers: int = 2,
    ray_address: str | None = None,
) -> BulkResult:
    """Embed every document of ``source`` into ``sink`` on a Ray cluster; resumable by ids.

    ``source``: a ``.jsonl``/``.jsonl.gz``/``.parquet`` file or folder, a list of :class:`Document` s,
    dicts or strings, or a ``ray.data.Dataset``; ``id_field``/``text_field`` name the columns (missing ids
    become :func:`~reasonir_rag.index.store.content_id` of the text); other columns (or ``metadata_fields``)
    become metadata. One encoder actor per GPU when the cluster has GPUs, else ``num_actors`` (default:
    the cluster's CPUs minus one, so reading and writing keep a core) actors of ``num_cpus_per_actor``.
    ``sink``: a :class:`ParquetSink`, a :class:`ChromaSink` or a folder path (parquet). Ray is started
    locally (or joins ``ray_address``) when not yet initialised.
    """
    started = time.monotonic()
    ray = require("ray")
    if isinstance(sink, (str, os.PathLike)):
        sink = ParquetSink(str(sink))
    if not isinstance(sink, (ParquetSink, ChromaSink)):
        raise InvalidInputError(f"sink must be a ParquetSink, a ChromaSink or a folder path; got {sink!r}")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    spec = _portable_spec(encoder_spec)
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise DataNotFoundError(f"no corpus at {source}")
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=True)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if num_actors is None:
        num_actors = gpus if gpus else max(1, int(resources.get("CPU", 1) // num_cpus_per_actor) - 1)
    actor_args: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": num_cpus_per_actor}

    driver_client = None
    if isinstance(sink, ParquetSink):
        Path(sink.path).mkdir(parents=True, exist_ok=True)
        for stale in Path(sink.path).glob(".part-*.tmp"):  # a killed run's unfinished part: never counted
            stale.unlink()
    elif not sink.connection.on_server:
        driver_client, _ = sink.connection.open()
    done = existing_ids(sink, driver_client)
    logger.info("%s already holds %d records; those are skipped", sink.describe(), len(done))

    ds = _read_source(ray, source, text_field, batch_size)
    ds = ds.map_batches(_prepare, batch_format="pyarrow", batch_size=batch_size, num_cpus=0.5, fn_kwargs=dict(
        id_field=id_field, text_field=text_field, metadata_fields=metadata_fields,
        done_ref=[ray.put(done)], compare_hash=isinstance(sink, ChromaSink)))
    ds = ds.map_batches(_EncodeActor, fn_constructor_kwargs={"spec": spec}, batch_format="pyarrow",
                        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=num_actors), **actor_args)
    stores: dict[str, Any] = {}
    if isinstance(sink, ParquetSink):
        ds = ds.map_batches(_write_parquet, batch_format="pyarrow", batch_size=None, num_cpus=0.5,
                            fn_kwargs={"sink": sink})
    elif sink.connection.on_server:
        ds = ds.map_batches(_ChromaWriter, fn_constructor_kwargs={"sink": sink}, batch_format="pyarrow",
                            batch_size=None, num_cpus=0.25, compute=ray.data.ActorPoolStrategy(size=max(1, writers)))
    # else: an embedded Chroma folder belongs to one process: the driver writes it below

    result = BulkResult(sink=sink.describe())
    failure = None
    try:
        _collect(ds, sink, stores, result)
    except Exception as exc:  # re-raised below as a message: Ray's frames must not outlive this call
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        # The failed run's frames hold its actors; until they are collected, those actors keep their CPUs/GPUs
        # and a retry in the same process waits for resources.
        del ds
        gc.collect()
        raise BulkEmbeddingError(f"bulk embedding into {result.sink} stopped after {result.encoded} record(s) "
                                 f"were written; rerun to resume (records in the sink are skipped): {failure}",
                                 result)
    if result.invalid:
        logger.warning("skipped %d empty or non-string text(s), e.g. %s", result.invalid,
                       ", ".join(result.invalid_ids[:10]))
    result.seconds = time.monotonic() - started
    logger.info("bulk embedding into %s: %d encoded, %d already there, %d invalid, %d failed, %.1f s", result.sink,
                result.encoded, result.skipped, result.invalid, result.failed, result.seconds)
    if result.failed:
        first_id, first_error = next(iter(result.failures.items()))
        raise BulkEmbeddingError(f"{result.failed} text(s) could not be embedded into {result.sink} (the other "
                                 f"{result.encoded} were written; a rerun tries only the missing ones). First: "
                                 f"{first_id}: {first_error}", result)
    return result


def _collect(ds: Any, sink: ParquetSink | ChromaSink, stores: dict[str, Any], result: BulkResult) -> None:
    """Drain the pipeline into ``result`` (and into an embedded Chroma folder, which only the driver may write)."""
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        if isinstance(sink, ChromaSink) and not sink.connection.on_server:
            _write_chroma(sink, batch, stores)
        for doc_id, status, error in zip(batch.column("id").to_pylist(), batch.column("status").to_pylist(),
                                         batch.column("error").to_pylist(), strict=True):
            if status == ENCODED:
                result.encoded += 1
            elif status == SKIP:
                result.skipped += 1
            elif status == INVALID:
                result.invalid += 1
                if len(result.invalid_ids) < 100:
                    result.invalid_ids.append(doc_id)
            elif status == FAILED:
                result.failed += 1
                if len(result.failures) < 100:
                    result.failures[doc_id] = error


__all__ = ["BulkEmbeddingError", "BulkResult", "embed_corpus_with_ray", "load_encoder"]

"""Bulk corpus embedding on a Ray cluster: one encoder actor per GPU, resumable by ids.

The pipeline is Ray Data's: read (jsonl / parquet / a list) -> prepare (ids, text hashes, skip what the sink
already holds) -> ``map_batches`` with an encoder actor pool (``num_gpus=1`` each, one per GPU; on CPU
``num_cpus`` actors) -> write. Each actor loads the model itself from a picklable *spec*, never from
weights shipped by the driver: ``("path/or/hub-id", {kwargs})`` as :meth:`ReasonIREncoder.load_spec`
returns, ``"openai:MODEL@URL"`` for a served model (:mod:`reasonir_rag.remote_encoder`), or a picklable
zero-argument factory.

Sinks: :class:`ParquetSink` (a folder of ``part-*.parquet`` files, each written whole then renamed, so a
killed run never leaves half a file) and :class:`ChromaSink` (a Chroma server, written by writer actors
through :class:`~reasonir_rag.store.ChromaStore`, or an embedded folder, written by the driver). Before
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
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.store import HASH_KEY, EncoderMismatchError, content_id, text_hash
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "_fingerprint.json"
EncoderSpec = Any  # (name_or_path, kwargs) | str | Callable[[], encoder]

# statuses each row carries through the pipeline
TODO, SKIP, INVALID, ENCODED, FAILED = "todo", "skip", "invalid", "encoded", "failed"


# ---------------------------------------------------------------------------------------------- sinks
@dataclass(frozen=True)
class ParquetSink:
    """A folder of parquet parts: ``id``, ``text``, ``metadata`` (JSON), ``text_sha256``, ``embedding``."""

    path: str

    def describe(self) -> str:
        return f"parquet folder {self.path}"


@dataclass(frozen=True)
class ChromaSink:
    """A Chroma collection: on a server (``host``/``port``) or in an embedded folder (``path``)."""

    collection: str
    host: str | None = None
    port: int | None = None
    path: str | None = None
    ssl: bool = False

    @property
    def on_server(self) -> bool:
        return self.host is not None or self.port is not None

    def client_args(self) -> dict[str, Any]:
        if self.on_server:
            return {"host": self.host, "port": self.port, "ssl": self.ssl}
        return {"path": self.path}

    def describe(self) -> str:
        where = f"{self.host or 'localhost'}:{self.port or 8000}" if self.on_server else self.path
        return f"Chroma collection {self.collection!r} at {where}"


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


class BulkEmbeddingError(RuntimeError):
    """A bulk run ended with texts not embedded; everything else reached the sink and a rerun resumes by ids."""

    def __init__(self, message: str, result: BulkResult | None = None):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------------- encoder specs
def load_encoder(spec: EncoderSpec, *, device: str | None = None) -> Any:
    """Build the encoder a spec names (inside an actor: each process loads its own model once)."""
    if callable(spec) and not isinstance(spec, (str, tuple, list)):
        return spec()
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1] or {}))
    if isinstance(name, str) and name.startswith("openai:"):
        from reasonir_rag.remote_encoder import from_spec

        return from_spec(name, **kwargs)
    from reasonir_rag.encoder import shared_encoder

    if device is not None:
        kwargs.setdefault("device", device)
    return shared_encoder(name, **kwargs)


def _portable_spec(spec: EncoderSpec) -> EncoderSpec:
    """A spec the actors can rebuild from: an encoder object becomes its own ``load_spec()``."""
    if hasattr(spec, "load_spec") and hasattr(spec, "encode_documents"):
        return spec.load_spec()
    if isinstance(spec, (str, tuple, list)) or callable(spec):
        return spec
    raise TypeError(f"encoder_spec must be (name_or_path, kwargs), a string, an encoder or a factory; got {spec!r}")


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
        outcomes = [self._encode_alone(t) for t in texts] if len(texts) > 1 else [first]
        if len(texts) > 1 and all(isinstance(o, str) for o in outcomes):
            self.broken = f"not tried: the encoder failed on every text of an earlier batch ({first})"
        return outcomes

    def _encode_alone(self, text: str) -> np.ndarray | str:
        try:
            return np.asarray(self.encoder.encode_documents([text], show_progress=False), dtype=np.float32)[0]
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"


def _encoded_rows(batch: Any) -> tuple[list[str], list[str], list[dict[str, Any]], np.ndarray, str | None]:
    """The encoded rows of a batch: ids, texts, metadatas, vectors and the encoder fingerprint."""
    status = batch.column("status").to_pylist()
    rows = [i for i, s in enumerate(status) if s == ENCODED]
    if not rows:
        return [], [], [], np.zeros((0, 0), dtype=np.float32), None
    pick = batch.take(rows)
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in pick.column("embedding").to_numpy(
        zero_copy_only=False)])
    metas = [json.loads(m) if m else {} for m in pick.column("metadata").to_pylist()]
    return (pick.column("id").to_pylist(), pick.column("text").to_pylist(), metas, vectors,
            pick.column("fingerprint")[0].as_py())


def _summary(batch: Any) -> Any:
    pa = require("pyarrow")
    return pa.table({"id": batch.column("id"), "status": batch.column("status"), "error": batch.column("error")})


class _PrecomputedEncoder:
    """The encoder surface :class:`ChromaStore` needs, answering with vectors the actors already made."""

    def __init__(self, fingerprint: dict[str, Any]):
        self.fingerprint = fingerprint
        self.dim = int(fingerprint["dim"])
        self.vectors: Mapping[str, np.ndarray] = {}

    def encode_documents(self, texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def _write_chroma(sink: ChromaSink, batch: Any, stores: dict[str, Any]) -> None:
    ids, texts, metas, vectors, fingerprint = _encoded_rows(batch)
    if not ids:
        return
    from reasonir_rag.store import ChromaStore

    store = stores.get(fingerprint)
    if store is None:
        encoder = _PrecomputedEncoder(json.loads(fingerprint))
        store = stores[fingerprint] = ChromaStore(sink.collection, encoder=encoder, **sink.client_args())
    store.encoder.vectors = dict(zip(texts, vectors, strict=True))  # this batch's
    store.add([Document(i, t, m) for i, t, m in zip(ids, texts, metas, strict=True)], show_progress=False)


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
    from reasonir_rag.store import make_client

    errors = require("chromadb.errors")
    if client is None:
        client, _ = make_client(**sink.client_args())
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


# ---------------------------------------------------------------------------------------------- reading
def _read_source(ray: Any, source: Any, text_field: str, batch_size: int) -> Any:
    if isinstance(source, ray.data.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no corpus at {path}")
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        parquet = [str(p) for p in files if p.suffix == ".parquet"]
        jsonl = [str(p) for p in files if p.name.endswith((".jsonl", ".jsonl.gz", ".json"))]
        if parquet and not jsonl:
            return ray.data.read_parquet(parquet)
        if jsonl and not parquet:
            return ray.data.read_json(jsonl, lines=True)
        raise ValueError(f"{path}: expected .jsonl(.gz) or .parquet files (one kind), found "
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
                raise TypeError(f"source items must be Documents, dicts or strings; got {type(item).__name__}")
        if not rows:
            raise ValueError("the source holds no documents")
        return ray.data.from_items(rows, override_num_blocks=max(1, min(200, -(-len(rows) // batch_size))))
    raise TypeError(f"source must be a path, a list of documents or a ray Dataset; got {type(source).__name__}")


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
    become :func:`~reasonir_rag.store.content_id` of the text); other columns (or ``metadata_fields``)
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
        raise TypeError(f"sink must be a ParquetSink, a ChromaSink or a folder path; got {sink!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    spec = _portable_spec(encoder_spec)
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise FileNotFoundError(f"no corpus at {source}")
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
    elif not sink.on_server:
        from reasonir_rag.store import make_client

        driver_client, _ = make_client(**sink.client_args())
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
    elif sink.on_server:
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
        if isinstance(sink, ChromaSink) and not sink.on_server:
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


__all__ = ["BulkEmbeddingError", "BulkResult", "ChromaSink", "ParquetSink", "embed_corpus_with_ray", "existing_ids",
           "load_encoder", "read_parquet_embeddings", "write_parquet_part"]

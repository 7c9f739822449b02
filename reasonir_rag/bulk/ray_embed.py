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

This module is the entry point: it sizes the actor pools, chains the stages and counts what reached the sink.
The parts: encoder specs (``specs.py``), reading the source (``sources.py``), the per-batch stages the workers
run (``stages.py``), the sinks (``sinks.py``).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._common.progress import progress
from reasonir_rag._deps import require
from reasonir_rag.bulk.sinks import ChromaSink, ParquetSink, existing_ids
from reasonir_rag.bulk.sources import count_rows, read_source
from reasonir_rag.bulk.specs import EncoderSpec, load_encoder, portable_spec
from reasonir_rag.bulk.stages import (
    ENCODED,
    FAILED,
    INVALID,
    SKIP,
    ChromaWriter,
    EncodeActor,
    prepare,
    write_chroma,
    write_parquet,
)
from reasonir_rag.errors import BulkEmbeddingError, DataNotFoundError, InvalidInputError

logger = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------------------------- the entry point
def embed_corpus_with_ray(
    source: Any,
    *,
    encoder_spec: EncoderSpec,
    sink: ParquetSink | ChromaSink | str,
    id_field: str = "id",
    text_field: str = "text",
    metadata_fields: list[str] | None = None,
    rows_per_batch: int = 64,
    num_actors: int | None = None,
    num_cpus_per_actor: float = 1,
    writers: int = 2,
    ray_address: str | None = None,
    show_progress: bool = True,
) -> BulkResult:
    """Embed every document of ``source`` into ``sink`` on a Ray cluster; resumable by ids.

    ``source``: a ``.jsonl``/``.jsonl.gz``/``.parquet`` file or folder, a list of :class:`Document` s,
    dicts or strings, or a ``ray.data.Dataset``; ``id_field``/``text_field`` name the columns (missing ids
    become :func:`~reasonir_rag.index.records.content_id` of the text); other columns (or ``metadata_fields``)
    become metadata. One encoder actor per GPU when the cluster has GPUs, else ``num_actors`` (default:
    the cluster's CPUs minus one, so reading and writing keep a core) actors of ``num_cpus_per_actor``.
    ``sink``: a :class:`ParquetSink`, a :class:`ChromaSink` or a folder path (parquet). ``rows_per_batch`` rows
    go to an actor at a time (the encoder's own ``batch_size`` is texts per forward pass). Ray is started
    locally (or joins ``ray_address``) when not yet initialised. ``show_progress``: a bar in documents (those
    already in the sink included) on a terminal; its total is counted from the source where that is cheap.
    """
    started = time.monotonic()
    ray = require("ray")
    if isinstance(sink, (str, os.PathLike)):
        sink = ParquetSink(str(sink))
    if not isinstance(sink, (ParquetSink, ChromaSink)):
        raise InvalidInputError(f"sink must be a ParquetSink, a ChromaSink or a folder path; got {sink!r}")
    if rows_per_batch < 1:
        raise InvalidInputError(f"rows_per_batch must be >= 1, got {rows_per_batch}")
    spec = portable_spec(encoder_spec)
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

    ds = read_source(ray, source, text_field, rows_per_batch)
    ds = ds.map_batches(prepare, batch_format="pyarrow", batch_size=rows_per_batch, num_cpus=0.5, fn_kwargs=dict(
        id_field=id_field, text_field=text_field, metadata_fields=metadata_fields,
        done_ref=[ray.put(done)], compare_hash=isinstance(sink, ChromaSink)))
    ds = ds.map_batches(EncodeActor, fn_constructor_kwargs={"spec": spec}, batch_format="pyarrow",
                        batch_size=rows_per_batch, compute=ray.data.ActorPoolStrategy(size=num_actors), **actor_args)
    stores: dict[str, Any] = {}
    if isinstance(sink, ParquetSink):
        ds = ds.map_batches(write_parquet, batch_format="pyarrow", batch_size=None, num_cpus=0.5,
                            fn_kwargs={"sink": sink})
    elif sink.connection.on_server:
        ds = ds.map_batches(ChromaWriter, fn_constructor_kwargs={"sink": sink}, batch_format="pyarrow",
                            batch_size=None, num_cpus=0.25, compute=ray.data.ActorPoolStrategy(size=max(1, writers)))
    # else: an embedded Chroma folder belongs to one process: the driver writes it below

    result = BulkResult(sink=sink.describe())
    failure = None
    try:
        with progress(total=count_rows(source), desc=f"embedding into {result.sink}", unit="doc",
                      show=show_progress) as bar:
            _collect(ds, sink, stores, result, bar.update)
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


def _collect(ds: Any, sink: ParquetSink | ChromaSink, stores: dict[str, Any], result: BulkResult,
             advance: Callable[[int], Any]) -> None:
    """Drain the pipeline into ``result`` (and into an embedded Chroma folder, which only the driver may write),
    calling ``advance`` with each batch's row count."""
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        if isinstance(sink, ChromaSink) and not sink.connection.on_server:
            write_chroma(sink, batch, stores)
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
        advance(batch.num_rows)


__all__ = [  # the sinks and the spec loader are re-exported: callers import them from here
    "BulkEmbeddingError", "BulkResult", "ChromaSink", "EncoderSpec", "ParquetSink", "embed_corpus_with_ray",
    "load_encoder",
]

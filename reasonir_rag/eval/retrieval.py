"""Run retrieval over an :class:`~reasonir_rag.eval.ir_data.IRCollection` and score it.

Two ways to retrieve: exact cosine over an in-memory numpy matrix of document embeddings (the encoder's
document prefix applied, queries with the task's instruction), or any index exposing
``search(query, k=..., task=...) -> list[ScoredDocument]`` (ChromaStore,
:class:`~reasonir_rag.eval.bm25.BM25Retriever`).
BRIGHT's excluded ids are removed from each query's results before scoring, as BRIGHT does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.ir_data import IRCollection
from reasonir_rag.eval.ir_metrics import DEFAULT_METRICS, RetrievalScores, evaluate_run, exclude_from_run
from reasonir_rag.types import ScoredDocument

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]


class SearchIndex(Protocol):
    def search(self, query: str, k: int = 10, *, task: str | None = None) -> list[ScoredDocument]: ...


@runtime_checkable
class QueryEncoder(Protocol):
    def encode_queries(self, texts: Sequence[str], *, instruction: str | None = None,
                       task: str | None = None) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class RetrievalResult:
    """A scored run plus what it cost (seconds per stage) and how it was made."""

    collection: str
    scores: RetrievalScores
    run: Run = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "metrics": self.scores.mean, "n_queries": self.scores.n_queries,
                "seconds": self.seconds, "settings": self.settings}


def top_k_cosine(query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product (cosine for L2-normalised rows): (indices, scores), best first."""
    if query_vectors.ndim != 2 or doc_vectors.ndim != 2 or query_vectors.shape[1] != doc_vectors.shape[1]:
        raise InvalidInputError(f"embedding shapes do not match: queries {query_vectors.shape}, "
                         f"documents {doc_vectors.shape}")
    k = min(k, doc_vectors.shape[0])
    all_idx = np.empty((query_vectors.shape[0], k), dtype=np.int64)
    all_scores = np.empty((query_vectors.shape[0], k), dtype=np.float32)
    for start in range(0, query_vectors.shape[0], chunk):
        sims = query_vectors[start:start + chunk] @ doc_vectors.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(
            np.arange(sims.shape[1]), (sims.shape[0], 1))
        part = np.take_along_axis(sims, idx, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        all_idx[start:start + chunk] = np.take_along_axis(idx, order, axis=1)
        all_scores[start:start + chunk] = np.take_along_axis(part, order, axis=1)
    return all_idx, all_scores


def dense_run(
    encoder: QueryEncoder, collection: IRCollection, *, top_k: int = 1000, instruction: str | None = None,
    doc_embeddings: np.ndarray | None = None, seconds: dict[str, float] | None = None,
) -> Run:
    """Exact-cosine run: documents with the encoder's document prefix, queries with the collection's task
    instruction (BRIGHT) or ``instruction``. Pass ``doc_embeddings`` (rows in ``collection.corpus`` order)
    to reuse them."""
    doc_ids = list(collection.corpus)
    timing = seconds if seconds is not None else {}
    if doc_embeddings is None:
        t0 = time.perf_counter()
        doc_embeddings = encoder.encode_documents([collection.corpus[d].text for d in doc_ids])
        timing["encode_documents"] = time.perf_counter() - t0
    elif doc_embeddings.shape[0] != len(doc_ids):
        raise InvalidInputError(f"doc_embeddings has {doc_embeddings.shape[0]} rows for {len(doc_ids)} documents")
    qids = list(collection.queries)
    t0 = time.perf_counter()
    if collection.task is not None and instruction is None:
        query_vectors = encoder.encode_queries([collection.queries[q] for q in qids], task=collection.task)
    else:
        query_vectors = encoder.encode_queries([collection.queries[q] for q in qids], instruction=instruction)
    timing["encode_queries"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra = max((len(collection.excluded.get(q, ())) for q in qids), default=0)
    idx, scores = top_k_cosine(query_vectors, doc_embeddings, top_k + extra)
    run = {qid: {doc_ids[j]: float(s) for j, s in zip(idx[i], scores[i], strict=True)} for i, qid in enumerate(qids)}
    timing["search"] = time.perf_counter() - t0
    return run


def index_run(
    index: SearchIndex, collection: IRCollection, *, top_k: int = 1000, instruction: str | None = None,
    doc_id_key: str | None = None, seconds: dict[str, float] | None = None,
) -> Run:
    """A run from the index: ``search_many`` in one call when it has one (ChromaStore: one encoder call),
    else ``search`` per query; the collection's task (or ``instruction``) is passed along.

    With ``doc_id_key``, hits are chunks whose ``metadata[doc_id_key]`` names the source document; a
    document scores as its best chunk.
    """
    timing = seconds if seconds is not None else {}
    qids = list(collection.queries)
    texts = [collection.queries[q] for q in qids]
    k = top_k + max((len(collection.excluded.get(q, ())) for q in qids), default=0)
    options: dict[str, Any] = {"task": collection.task} if instruction is None else {"instruction": instruction}
    t0 = time.perf_counter()
    if hasattr(index, "search_many"):
        results = index.search_many(texts, k, **options)
    else:
        results = [index.search(text, k=k, **options) for text in texts]
    run: Run = {}
    for qid, hits in zip(qids, results, strict=True):
        scores: dict[str, float] = {}
        for hit in hits:
            doc_id = str(hit.metadata.get(doc_id_key, hit.id)) if doc_id_key else hit.id
            scores[doc_id] = max(scores.get(doc_id, -np.inf), float(hit.score))
        run[qid] = scores
    timing["search"] = time.perf_counter() - t0
    return run


def finish_run(run: Mapping[str, Mapping[str, float]], collection: IRCollection, top_k: int) -> Run:
    """Excluded ids removed (BRIGHT), then each query cut to its ``top_k`` best."""
    cleaned = exclude_from_run(run, collection.excluded) if collection.excluded else dict(run)
    out: Run = {}
    for qid, scores in cleaned.items():
        best = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)[:top_k]
        out[qid] = dict(best)
    return out


def evaluate_retrieval(
    collection: IRCollection, retriever: QueryEncoder | SearchIndex, *, metrics: Sequence[str] = DEFAULT_METRICS,
    top_k: int = 1000, instruction: str | None = None, doc_id_key: str | None = None,
    doc_embeddings: np.ndarray | None = None,
) -> RetrievalResult:
    """Retrieve for every query of ``collection`` and score the run.

    ``retriever`` is an encoder (exact cosine over the whole collection, in memory) or an index with
    ``search`` whose documents are the collection's (a ChromaStore built from it, a BM25Retriever).
    """
    seconds: dict[str, float] = {}
    if isinstance(retriever, QueryEncoder):
        run = dense_run(retriever, collection, top_k=top_k, instruction=instruction,
                        doc_embeddings=doc_embeddings, seconds=seconds)
        kind = "dense"
    elif hasattr(retriever, "search"):
        run = index_run(retriever, collection, top_k=top_k, instruction=instruction, doc_id_key=doc_id_key,
                        seconds=seconds)
        kind = "index"
    else:
        raise InvalidInputError(f"retriever must be an encoder (encode_queries) or an index (search), "
                        f"got {type(retriever).__name__}")
    run = finish_run(run, collection, top_k)
    scores = evaluate_run(collection.qrels, run, metrics)
    settings = {"retriever": _describe(retriever), "kind": kind, "top_k": top_k,
                "task": collection.task, "instruction": instruction, "collection": collection.describe()}
    logger.info("%s: %s", collection.name, ", ".join(f"{m}={v:.4f}" for m, v in scores.mean.items()))
    return RetrievalResult(collection.name, scores, run, seconds, settings)


def evaluate_tasks(
    collections: Sequence[IRCollection], retriever: QueryEncoder | SearchIndex, **kwargs: Any,
) -> dict[str, Any]:
    """Per-task results and their macro average (BRIGHT reports the mean over tasks)."""
    results = {c.name: evaluate_retrieval(c, retriever, **kwargs) for c in collections}
    metrics = next(iter(results.values())).scores.mean.keys() if results else ()
    average = {m: float(np.mean([r.scores.mean[m] for r in results.values()])) for m in metrics}
    return {"tasks": {name: r.to_dict() for name, r in results.items()}, "average": average}


def _describe(retriever: Any) -> Any:
    fingerprint = getattr(retriever, "fingerprint", None)
    if isinstance(fingerprint, dict):
        return fingerprint
    describe = getattr(retriever, "describe", None)
    return describe() if callable(describe) else type(retriever).__name__

"""Ranking metrics computed per query exactly as trec_eval (pytrec_eval) computes them, then averaged.

- ``ndcg@k``: linear gain (the judged relevance level), log2(rank + 1) discount, ideal ranking from the
  positive judgments; trec_eval's ``ndcg_cut_k``.
- ``recall@k``: relevant (level >= 1) retrieved in the top k over all relevant; ``recall_k``.
- ``mrr@k``: 1 / rank of the first relevant document within the top k; ``mrr`` is trec_eval's
  ``recip_rank`` (no cut-off).
- ``precision@k``: relevant in the top k over k; ``P_k``.

A run is ``{qid: {docid: score}}`` as in pytrec_eval; documents are ranked by score, ties broken by doc id
in reverse order (trec_eval's rule). Queries are those of the qrels with at least one relevant document; a
query missing from the run scores 0 (pytrec_eval would silently drop it) and is logged.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger(__name__)

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]
DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_METRIC = re.compile(r"(ndcg|recall|mrr|precision)(?:@(\d+))?")


@dataclass
class RetrievalScores:
    """Mean of each metric over the evaluated queries, and every query's values."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(repr=False)
    n_queries: int = 0
    missing_from_run: list[str] = field(default_factory=list, repr=False)


def parse_metric(name: str) -> tuple[str, int | None]:
    m = _METRIC.fullmatch(name.strip().lower())
    if not m or (m.group(1) in ("ndcg", "recall", "precision") and m.group(2) is None):
        raise InvalidInputError(f"unknown metric {name!r}: use ndcg@k, recall@k, precision@k, mrr@k or mrr")
    k = int(m.group(2)) if m.group(2) else None
    if k is not None and k < 1:
        raise InvalidInputError(f"metric cut-off must be >= 1 in {name!r}")
    return m.group(1), k


def rank(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by descending score, ties by descending doc id (as trec_eval orders them)."""
    return [d for d, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def query_metrics(judged: Mapping[str, int], ranked: Sequence[str], metrics: Iterable[str]) -> dict[str, float]:
    """Each metric for one query, from its judgments and its ranked doc ids."""
    relevant = {d for d, r in judged.items() if r >= 1}
    out: dict[str, float] = {}
    for name in metrics:
        kind, k = parse_metric(name)
        top = ranked if k is None else ranked[:k]
        if kind == "ndcg":
            dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top) if judged.get(d, 0) > 0)
            ideal_gains = sorted((r for r in judged.values() if r > 0), reverse=True)[:k]
            idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
            out[name] = dcg / idcg if idcg > 0 else 0.0
        elif kind == "recall":
            out[name] = sum(d in relevant for d in top) / len(relevant) if relevant else 0.0
        elif kind == "precision":
            out[name] = sum(d in relevant for d in top) / k if k else 0.0  # parse_metric requires k here
        else:  # mrr
            out[name] = next((1.0 / (i + 1) for i, d in enumerate(top) if d in relevant), 0.0)
    return out


def evaluate_run(qrels: Qrels, run: Run, metrics: Sequence[str] = DEFAULT_METRICS) -> RetrievalScores:
    """Per-query metrics and their means over the qrels' queries that have a relevant document."""
    for name in metrics:
        parse_metric(name)
    queries = sorted(q for q, judged in qrels.items() if any(r >= 1 for r in judged.values()))
    per_query: dict[str, dict[str, float]] = {}
    missing = []
    for qid in queries:
        scores = run.get(qid)
        if scores is None:
            missing.append(qid)
            scores = {}
        per_query[qid] = query_metrics(qrels[qid], rank(scores), metrics)
    if missing:
        logger.warning("%d of %d judged queries have no results in the run; they score 0 (first: %s)",
                       len(missing), len(queries), ", ".join(missing[:5]))
    mean = {m: (sum(v[m] for v in per_query.values()) / len(per_query) if per_query else float("nan"))
            for m in metrics}
    return RetrievalScores(mean=mean, per_query=per_query, n_queries=len(per_query), missing_from_run=missing)


def exclude_from_run(run: Run, excluded: Mapping[str, Iterable[str]]) -> dict[str, dict[str, float]]:
    """The run without each query's excluded doc ids (BRIGHT removes them before scoring)."""
    out = {}
    for qid, scores in run.items():
        drop = set(excluded.get(qid, ()))
        out[qid] = {d: s for d, s in scores.items() if d not in drop}
    return out


def per_query_values(scores: RetrievalScores, metric: str, query_ids: Sequence[str]) -> list[float]:
    """``metric`` for each of ``query_ids``, in that order (aligned vectors for paired tests)."""
    missing = [q for q in query_ids if q not in scores.per_query]
    if missing:
        raise InvalidInputError(f"{len(missing)} queries have no scores (first: {missing[:3]})")
    if query_ids and metric not in scores.per_query[query_ids[0]]:
        raise InvalidInputError(f"metric {metric!r} was not computed; have {sorted(scores.per_query[query_ids[0]])}")
    return [scores.per_query[q][metric] for q in query_ids]


def shared_queries(*systems: RetrievalScores) -> list[str]:
    """The queries every system was scored on, sorted: what a paired comparison may use."""
    if not systems:
        return []
    common = set(systems[0].per_query)
    for s in systems[1:]:
        common &= set(s.per_query)
    return sorted(common)

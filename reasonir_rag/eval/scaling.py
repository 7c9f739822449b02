"""Query-length scaling: how retrieval quality moves as the query is rewritten at larger token budgets.

ReasonIR's figure of nDCG against query length, on any collection: each query is rewritten by the project's
:class:`~reasonir_rag.pipeline.rewriter.QueryRewriter` at each budget (``max_tokens``; 0 is the original query),
every retriever searches with every budget's queries, and each (retriever, budget) is scored and compared with
the same retriever on the first budget (paired over queries). Rewrites go through the
:class:`~reasonir_rag.eval.journal.Journal`, keyed by what determines them (model, prompt, decoding), so a
rerun makes no LLM call it has made before; a failed rewrite is not recorded (the run stops after saving the
others, and a rerun resumes). One rewrite per (query, budget) serves every retriever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reasonir_rag._common.tokens import estimate_tokens
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.eval.ir_data import IRCollection
from reasonir_rag.eval.ir_metrics import DEFAULT_METRICS
from reasonir_rag.eval.journal import Journal, fill
from reasonir_rag.eval.retrieval import QueryEncoder, RetrievalResult, SearchIndex, evaluate_retrieval
from reasonir_rag.eval.retrieval_report import compare
from reasonir_rag.protocols import LLM

logger = logging.getLogger(__name__)

SCALING_METRICS = ("ndcg@10", "recall@100")


def parse_budgets(text: str) -> list[int]:
    """``"0,128,512"`` -> ``[0, 128, 512]``: distinct non-negative integers, ascending."""
    budgets: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise InvalidInputError(f"rewrite budget {part!r} is not an integer (e.g. 0,128,512,1024,2048)") from None
        if value < 0:
            raise InvalidInputError(f"rewrite budget {value} is negative (0 means the original query)")
        budgets.append(value)
    if not budgets:
        raise InvalidInputError("no rewrite budgets given (e.g. 0,128,512,1024,2048)")
    return sorted(set(budgets))


def system_name(retriever: str, budget: int) -> str:
    return f"{retriever}@{budget}"


def rewrite_at_budgets(
    collection: IRCollection, budgets: Sequence[int], *, llm: LLM | None, journal: Journal | None,
    rewriter_settings: Mapping[str, Any] | None = None,
) -> dict[int, dict[str, str]]:
    """Each budget's query texts by query id: 0 keeps the originals, any other budget is one batched rewrite
    of the queries the journal does not hold yet."""
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    if any(b > 0 for b in budgets) and (llm is None or journal is None):
        raise InvalidInputError("rewrite budgets above 0 need an LLM for the rewriter and a journal")
    qids = list(collection.queries)
    out: dict[int, dict[str, str]] = {}
    for budget in budgets:
        if budget == 0:
            out[0] = dict(collection.queries)
            continue
        assert llm is not None and journal is not None  # checked above
        settings = {**dict(rewriter_settings or {}), "max_tokens": budget, "task": collection.task,
                    "cache": None, "on_error": "fallback"}
        rewriter = QueryRewriter(llm, **settings)
        decoding = {"style": rewriter.style, "max_tokens": budget, "temperature": rewriter.temperature,
                    "top_p": rewriter.top_p, "seed": rewriter.seed, "keep_original": rewriter.keep_original,
                    "max_length": rewriter.max_length}
        keys = [Journal.key("rewrite", model=llm.model_name, prompt=rewriter.prompt(collection.queries[q]),
                            query=collection.queries[q], settings=decoding) for q in qids]

        def rewrite(todo: list[str], rewriter: QueryRewriter = rewriter, budget: int = budget) -> list[Any]:
            logger.info("rewriting %d of %d queries at budget %d", len(todo), len(qids), budget)
            return [LLMError(f"{q}: {r.error}") if r.error is not None  # a fallback is no answer: not journaled
                    else {"text": r.text, "generated": r.generated, "truncated": r.truncated}
                    for q, r in zip(todo, rewriter.rewrite_queries([collection.queries[q] for q in todo]),
                                    strict=True)]

        done = fill(journal, keys, qids, rewrite, batch=max(len(qids), 1), kind="rewrite",
                    metas=[{"budget": budget, "query_id": q} for q in qids])
        if done.failures:
            raise LLMError(f"{len(done.failures)} of {len(qids) - done.journaled} rewrites at budget {budget} failed; "
                           f"the others are saved in {journal.path}; rerun to resume: {done.failures[0]}",
                           transient=True)
        out[budget] = {q: done.values[key]["text"] for q, key in zip(qids, keys, strict=True)}
    return out


@dataclass
class ScalingResult:
    """Every (retriever, budget) run, and the scaling table built from them."""

    budgets: list[int]
    retrievers: list[str]
    results: dict[str, RetrievalResult] = field(repr=False)
    table: dict[str, Any] = field(repr=False)


def evaluate_scaling(
    collection: IRCollection, retrievers: Mapping[str, QueryEncoder | SearchIndex],
    queries_by_budget: Mapping[int, Mapping[str, str]], *, count_tokens: Callable[[str], int] | None = None,
    tokens_counted_with: str = "", metrics: Sequence[str] | None = None, top_k: int = 1000,
    instruction: str | None = None, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> ScalingResult:
    """Score every retriever on every budget's queries (document embeddings computed once per encoder) and
    build the table: one row per (budget, retriever) with the mean query tokens and the paired difference
    from the first budget."""
    budgets = sorted(queries_by_budget)
    if not budgets or not retrievers:
        raise InvalidInputError("scaling needs at least one budget and one retriever")
    counter = count_tokens or estimate_tokens
    label = tokens_counted_with or ("the tokenizer given" if count_tokens else "the 4-characters-a-token estimate")
    wanted = list(metrics) if metrics is not None else list(dict.fromkeys([*DEFAULT_METRICS, *SCALING_METRICS]))
    doc_embeddings: dict[str, np.ndarray] = {}
    results: dict[str, RetrievalResult] = {}
    mean_tokens: dict[int, float] = {}
    for budget in budgets:
        texts = queries_by_budget[budget]
        if set(texts) != set(collection.queries):
            raise InvalidInputError(f"budget {budget}: its queries are not the collection's")
        mean_tokens[budget] = float(np.mean([counter(t) for t in texts.values()]))
        variant = dataclasses.replace(collection, queries=dict(texts))
        for name, retriever in retrievers.items():
            embeddings = None
            if isinstance(retriever, QueryEncoder):
                if name not in doc_embeddings:
                    doc_embeddings[name] = retriever.encode_documents(
                        [collection.corpus[d].text for d in collection.corpus])
                embeddings = doc_embeddings[name]
            result = evaluate_retrieval(variant, retriever, metrics=wanted, top_k=top_k, instruction=instruction,
                                        doc_embeddings=embeddings)
            result.settings["rewrite_budget"] = budget
            results[system_name(name, budget)] = result
    shown = [m for m in SCALING_METRICS if m in wanted] or wanted[:2]
    rows = []
    base = budgets[0]
    for budget in budgets:
        for name in retrievers:
            result = results[system_name(name, budget)]
            vs = {} if budget == base else {m: compare(result, results[system_name(name, base)], m,
                                                       confidence=confidence, n_resamples=n_resamples, seed=seed)
                                          for m in shown}
            rows.append({"budget": budget, "retriever": name, "mean_query_tokens": mean_tokens[budget],
                         "metrics": {m: result.scores.mean[m] for m in shown}, "vs_baseline": vs})
    table = {"budgets": budgets, "baseline_budget": base, "retrievers": list(retrievers), "metrics": shown,
             "tokens_counted_with": label, "rows": rows}
    logger.info("scaling: %d budgets x %d retrievers on %s", len(budgets), len(retrievers), collection.name)
    return ScalingResult(budgets, list(retrievers), results, table)


def scaling_pairs(result: ScalingResult) -> list[tuple[str, str]]:
    """Between retrievers at each budget (later minus earlier); budgets are compared in the table."""
    names = result.retrievers
    return [(system_name(names[j], b), system_name(names[i], b))
            for b in result.budgets for i in range(len(names)) for j in range(i + 1, len(names))]

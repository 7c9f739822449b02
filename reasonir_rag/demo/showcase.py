"""The demo's showcase: a few MMLU questions through the whole pipeline, each stage shown.

Retrieval is :class:`~reasonir_rag.pipeline.retriever.Retriever`'s (rewrite -> search -> rerank); this module
journals its LLM stages, keeps the candidates before reranking for display, and asks the reader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasonir_rag.demo.config import SHOWCASE, DemoConfig
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.pipeline.retriever import Retriever, SearchOptions, Stage
from reasonir_rag.types import Rewrite, ScoredDocument


@dataclass
class ShowcaseItem:
    """One question through the whole pipeline."""

    question_id: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: str  # the correct letter
    rewrite: str
    rewrite_error: str | None
    before: list[ScoredDocument]  # retrieval order (top k of the candidates)
    after: list[ScoredDocument]  # reranked top k
    reader_output: str
    predicted: str | None


def _journaled(journal: Any, kind: str, keys: list[str], items: list[Any],
               compute: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """Values for ``keys``: from the journal where recorded, else computed in one batch and recorded."""
    from reasonir_rag.eval.journal import fill

    done = fill(journal, keys, items, compute, batch=max(len(keys), 1), kind=kind)
    return [done.values[key] for key in keys]


class _ShowcaseStages:
    """A :class:`~reasonir_rag.pipeline.retriever.StageRunner` that journals the LLM stages (a rerun makes no
    LLM call) and keeps every stage's results for display."""

    def __init__(self, journal: Any, rewriter: Any, reranker: Any):
        self.journal, self.rewriter, self.reranker = journal, rewriter, reranker
        self.results: dict[str, list[Any]] = {}

    def __call__(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
                 options: SearchOptions) -> list[Any]:
        key = self.journal.key
        out: list[Any]
        if stage == "rewrite":
            keys = [key("demo-rewrite", rewriter=repr(self.rewriter), query=t) for t in items]
            rows = _journaled(self.journal, "demo-rewrite", keys, items, lambda todo: [
                {"text": r.text, "prefix_kind": r.prefix_kind, "error": r.error} for r in compute(todo)])
            out = [Rewrite(r["text"], r["prefix_kind"], q, "", error=r["error"]) for q, r in zip(items, rows,
                                                                                                 strict=True)]
        elif stage == "rerank":
            keys = [key("demo-rerank", reranker=repr(self.reranker), query=q, candidates=[d.id for d in docs],
                        top_k=options.k) for q, docs in items]
            rows = _journaled(self.journal, "demo-rerank", keys, items,
                              lambda todo: [[asdict(d) for d in docs] for docs in compute(todo)])
            out = [[ScoredDocument(**d) for d in docs] for docs in rows]
        else:
            out = compute(items)
        self.results[stage] = out
        return out


def run_showcase(questions: Sequence[Any], *, store: Any, rewriter: Any, reranker: Any, reader: Any,
                 journal: Any, config: DemoConfig) -> list[ShowcaseItem]:
    """Rewrite, retrieve, rerank and read each question, every LLM result journaled."""
    from reasonir_rag.eval.extract import extract_choice
    from reasonir_rag.eval.prompts import build_messages, prompt_hash, spec_for

    stages = _ShowcaseStages(journal, rewriter, reranker)
    retriever = Retriever(store, rewriter=rewriter, reranker=reranker, k=config.k, fetch_k=config.candidates)
    after = retriever.retrieve_many([q.question for q in questions], run=stages)
    rewrites, candidates = stages.results["rewrite"], stages.results["search"]

    spec = spec_for("mmlu")
    generation = {**spec.generation, "max_tokens": config.reader_tokens}
    prompts = [build_messages("mmlu", q, docs, max_passage_tokens=config.max_passage_tokens,
                              truncate=reader.truncate) for q, docs in zip(questions, after, strict=True)]
    keys = [journal.key("demo-reader", reader=reader.model_name, prompt=prompt_hash(p), generation=generation)
            for p in prompts]
    answers = _journaled(journal, "demo-reader", keys, prompts,
                         lambda todo: reader.generate(todo, seed=0, **generation))

    items = []
    for q, rw, docs, ranked, text in zip(questions, rewrites, candidates, after, answers, strict=True):
        found = extract_choice(text, style=spec.extract_style, n_choices=len(q.choices), choices=q.choices)
        items.append(ShowcaseItem(q.id, q.subject, q.question, q.choices, q.answer_letter, rw.text, rw.error,
                                  docs[: config.k], ranked, text, found.letter))
    return items


def showcase_questions(mmlu_dir: Path, limit: int | None = None) -> list[Any]:
    """The :data:`SHOWCASE` questions, in that order."""
    from reasonir_rag.eval.mmlu import load_mmlu

    subjects = sorted({qid.split("/")[1] for qid in SHOWCASE})
    by_id = {q.id: q for q in load_mmlu(mmlu_dir, split="test", subjects=subjects)}
    missing = [qid for qid in SHOWCASE if qid not in by_id]
    if missing:
        raise InvalidInputError(f"MMLU in {mmlu_dir} lacks the showcase question(s) {missing}")
    return [by_id[qid] for qid in SHOWCASE[:limit]]

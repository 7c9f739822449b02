"""The RAG evaluation runner: closed-book against RAG variants, on one reader, resumable.

Each condition is a pipeline over the same questions: optional rewrite -> retrieval -> optional rerank
-> reader. Every stage's result goes to the :class:`~reasonir_rag.eval.journal.Journal` as it arrives,
keyed by what determines it, so a killed run resumes without repeating or losing a recorded call, and
stages shared by several conditions (the retrieval of the plain question, say) run once. Each journal
entry keeps the tokens and seconds it cost, so the report's cost columns stay right after a resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from reasonir_rag._common.progress import progress
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.eval.datasets import Dataset, Question
from reasonir_rag.eval.extract import extract_choice, extract_reasonir_gpqa, extract_reasonir_mmlu
from reasonir_rag.eval.journal import Journal, fill
from reasonir_rag.eval.prompts import build_messages, prompt_hash, retrieval_query, spec_for
from reasonir_rag.eval.protocol import EvalProtocol, protocol_for
from reasonir_rag.eval.report import ConditionResult, QuestionOutcome, build_report, run_record
from reasonir_rag.pipeline.reranker import RERANK_CANDIDATES
from reasonir_rag.pipeline.retriever import Query, Retriever, SearchOptions, Stage
from reasonir_rag.protocols import LLM, Reranker, Rewriter, SearchIndex
from reasonir_rag.types import Rewrite, ScoredDocument

logger = logging.getLogger(__name__)

# condition name -> (rewrite, rerank); every condition but closed-book retrieves
CONDITIONS: dict[str, tuple[bool, bool]] = {
    "rag": (False, False),
    "rag+rewrite": (True, False),
    "rag+rerank": (False, True),
    "rag+rewrite+rerank": (True, True),
}
CLOSED_BOOK = "closed-book"
ALL_CONDITIONS = (CLOSED_BOOK, *CONDITIONS)


@dataclass(frozen=True)
class EvalSettings:
    """What a run varies besides its models. ``None`` takes the dataset prompt's own default."""

    conditions: tuple[str, ...] = ALL_CONDITIONS
    top_k: int | None = None  # passages shown to the reader (MMLU 3, GPQA 5)
    candidates: int = RERANK_CANDIDATES  # retrieved for the reranker to choose from (ReasonIR: 100)
    task: str | None = None  # BRIGHT task instruction for the retriever's queries
    instruction: str | None = None
    max_tokens: int | None = None  # reader's generation budget
    temperature: float | None = None
    seed: int = 0
    concurrency: int = 4  # reader prompts in flight at once (one journal commit each as they return)
    max_passage_tokens: int | None = None
    show_progress: bool = True
    protocol: str = "default"  # "paper": ReasonIR's evaluation code exactly (eval/protocol.py)

    def __post_init__(self) -> None:
        protocol_for(self.protocol)  # an unknown name fails here
        unknown = [c for c in self.conditions if c not in ALL_CONDITIONS]
        if unknown or not self.conditions:
            raise InvalidInputError(f"unknown conditions {unknown}; choose from {list(ALL_CONDITIONS)}")
        positive = {"candidates": self.candidates, "concurrency": self.concurrency, "top_k": self.top_k,
                    "max_tokens": self.max_tokens, "max_passage_tokens": self.max_passage_tokens}
        bad = [f"{name}={value!r}" for name, value in positive.items()
               if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1)]
        if bad:
            raise InvalidInputError(f"{', '.join(bad)}: each must be an integer >= 1")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise InvalidInputError(f"temperature must be between 0 and 2, got {self.temperature!r}")


@dataclass
class _Cost:
    tokens: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, entry: dict[str, Any]) -> None:
        self.tokens[stage] = self.tokens.get(stage, 0.0) + float(entry.get("tokens", 0))
        self.seconds[stage] = self.seconds.get(stage, 0.0) + float(entry.get("seconds", 0.0))


def _describe(obj: Any) -> str:
    fingerprint = getattr(obj, "fingerprint", None)
    if isinstance(fingerprint, dict):
        return repr(sorted(fingerprint.items()))
    return repr(obj)


def _messages_tokens(llm: Any, prompt: Any) -> int:
    text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
    return llm.count_tokens(text)


class _JournaledStages:
    """The evaluator's :class:`~reasonir_rag.pipeline.retriever.StageRunner`: each rewrite, retrieval and rerank
    is read from the journal or computed and committed as it returns, with its tokens and seconds."""

    def __init__(self, evaluator: RAGEvaluator, cost: _Cost):
        self.evaluator, self.cost = evaluator, cost

    def __call__(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
                 options: SearchOptions) -> list[Any]:
        if stage == "rewrite":
            return self._rewrites(items, compute)
        if stage == "search":
            return self._retrievals(items, compute, options)
        return self._reranks(items, compute, options)

    def _rewrites(self, texts: list[str], compute: Callable[[list[str]], list[Rewrite]]) -> list[Rewrite]:
        rewriter = self.evaluator.rewriter
        assert rewriter is not None  # only a pipeline with a rewriter has a rewrite stage

        def journaled(todo: list[str]) -> list[dict[str, Any] | LLMError]:
            start = time.perf_counter()
            rewrites = compute(todo)
            each = (time.perf_counter() - start) / len(todo)
            llm = rewriter.llm
            # a failed rewrite falls back to the question; in a run that would be journaled as if the LLM had
            # answered, so it is a failure here (not recorded, redone on resume)
            return [LLMError(f"rewriting failed: {r.error}", transient=True) if r.error is not None else
                    {"text": r.text, "prefix_kind": r.prefix_kind, "generated": r.generated, "seconds": each,
                     "tokens": _messages_tokens(llm, rewriter.prompt(q)) + llm.count_tokens(r.generated)}
                    for q, r in zip(todo, rewrites, strict=True)]

        keys = [Journal.key("rewrite", rewriter=_describe(rewriter), query=t) for t in texts]
        entries = self.evaluator._journaled("rewrite", keys, texts, journaled,
                                            batch=self.evaluator.settings.concurrency,
                                            metas=[{"query": t} for t in texts])
        for entry in entries:
            self.cost.add("rewriter", entry)
        return [Rewrite(e["text"], e["prefix_kind"], q, e.get("generated", "")) for q, e in zip(texts, entries,
                                                                                                 strict=True)]

    def _retrievals(self, queries: list[Query], compute: Callable[[list[Query]], list[list[ScoredDocument]]],
                    options: SearchOptions) -> list[list[ScoredDocument]]:
        def journaled(todo: list[Query]) -> list[dict[str, Any]]:
            start = time.perf_counter()
            hits = compute(todo)
            each = (time.perf_counter() - start) / len(todo)
            return [{"docs": [asdict(d) for d in docs], "seconds": each,
                     "tokens": self.evaluator._query_tokens(query, options)}
                    for query, docs in zip(todo, hits, strict=True)]

        who = self.evaluator._retriever_identity()
        asked = [{"query": q.text, "prefix": q.prefix_kind, "k": options.fetch_k, "task": options.task,
                  "instruction": options.instruction} for q in queries]
        keys = [Journal.key("retrieval", retriever=who, **a) for a in asked]
        entries = self.evaluator._journaled("retrieval", keys, queries, journaled, batch=64, metas=asked)
        for entry in entries:
            self.cost.add("encoder", entry)
        return [[ScoredDocument(**d) for d in entry["docs"]] for entry in entries]

    def _reranks(self, pairs: list[tuple[str, list[ScoredDocument]]],
                 compute: Callable[[list[Any]], list[list[ScoredDocument]]],
                 options: SearchOptions) -> list[list[ScoredDocument]]:
        reranker = self.evaluator.reranker
        assert reranker is not None  # only a pipeline with a reranker has a rerank stage

        def journaled(todo: list[tuple[str, list[ScoredDocument]]]) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for question, docs in todo:
                start = time.perf_counter()
                ranked = compute([(question, docs)])[0]
                prompts = reranker.prompts(question, [d.text for d in docs], task=options.task) if docs else []
                out.append({"docs": [asdict(d) for d in ranked], "seconds": time.perf_counter() - start,
                            "tokens": sum(_messages_tokens(reranker.llm, p) for p in prompts)})
            return out

        keys = [Journal.key("rerank", reranker=_describe(reranker), query=q, candidates=[d.id for d in docs],
                            top_k=options.k, task=options.task) for q, docs in pairs]
        entries = self.evaluator._journaled("rerank", keys, pairs, journaled, batch=1,
                                            metas=[{"query": q, "candidates": [d.id for d in docs]}
                                                   for q, docs in pairs])
        for entry in entries:
            self.cost.add("reranker", entry)
        return [[ScoredDocument(**d) for d in entry["docs"]] for entry in entries]


class RAGEvaluator:
    """Runs the conditions of a reader comparison and builds the report (see the module docstring)."""

    def __init__(self, *, reader: LLM, journal: Journal, retriever: SearchIndex | None = None,
                 rewriter: Rewriter | None = None, reranker: Reranker | None = None,
                 settings: EvalSettings | None = None):
        self.reader, self.journal = reader, journal
        self.retriever, self.rewriter, self.reranker = retriever, rewriter, reranker
        self.settings = settings or EvalSettings()
        self.protocol: EvalProtocol = protocol_for(self.settings.protocol)
        #: per stage (rewrite, retrieval, rerank, reader): calls made in the last run, and read from the journal
        self.calls: dict[str, dict[str, int]] = {}
        self._retriever_key: str | None = None
        wanted = self.settings.conditions
        needs = {"retriever": any(c != CLOSED_BOOK for c in wanted),
                 "rewriter": any(CONDITIONS.get(c, (False, False))[0] for c in wanted),
                 "reranker": any(CONDITIONS.get(c, (False, False))[1] for c in wanted)}
        missing = [name for name, needed in needs.items() if needed and getattr(self, name) is None]
        if missing:
            raise InvalidInputError(f"conditions {list(wanted)} need a {' and a '.join(missing)}")
        self._check_retrieval_encoder(getattr(retriever, "encoder", None))

    def _check_retrieval_encoder(self, encoder: Any) -> None:
        """Name, in one warning, each way the store's encoder differs from what the protocol's RAG runs used."""
        protocol, found = self.protocol, []
        if encoder is None:
            return
        prefix = getattr(encoder, "document_prefix", "")
        if protocol.retrieval_instruction == "" and self.settings.instruction is None and prefix:
            found.append(f"the documents carry the prefix {prefix!r} (ReasonIR encoded both sides without one: "
                         "index with --document-prefix '')")
        max_length = getattr(getattr(encoder, "config", None), "max_length", None)
        if protocol.retrieval_max_length and max_length not in (None, protocol.retrieval_max_length):
            found.append(f"it embeds {max_length} tokens, not {protocol.retrieval_max_length} (--max-length)")
        dtype = str(getattr(encoder, "dtype", ""))
        if protocol.retrieval_dtype and "cuda" in str(getattr(encoder, "device", "")) and \
                not dtype.endswith(protocol.retrieval_dtype):
            found.append(f"it runs in {dtype}, not {protocol.retrieval_dtype} (--dtype)")
        if found:
            logger.warning("protocol %s: the retriever differs from ReasonIR's RAG runs: %s", protocol.name,
                           "; ".join(found))

    # ------------------------------------------------------------------ public
    def run(self, dataset: Dataset, name: str = "mmlu") -> list[ConditionResult]:
        """Every condition's outcomes and costs over ``dataset`` (``name``: ``mmlu`` or ``gpqa``)."""
        spec = spec_for(name)
        questions = list(dataset)
        if not questions:
            raise InvalidInputError("the dataset selection holds no question")
        top_k = self.settings.top_k or spec.top_k
        self.calls, self._retriever_key = {}, None
        results = []
        for condition in self.settings.conditions:
            logger.info("condition %s: %d questions", condition, len(questions))
            cost = _Cost()
            passages = self._passages(name, condition, questions, top_k, cost)
            outcomes = self._read(name, spec, questions, passages, cost, condition)
            settings = {"top_k": top_k if condition != CLOSED_BOOK else 0,
                        "candidates": self.settings.candidates if CONDITIONS.get(condition, (0, 0))[1] else None}
            results.append(ConditionResult(condition, outcomes, cost.tokens, cost.seconds, settings))
        return results

    def report(self, dataset: Dataset, name: str = "mmlu", *, corpus: dict[str, Any] | None = None,
               out_dir: Any = None) -> dict[str, Any]:
        """Run, then build (and with ``out_dir`` write) the report with everything needed to reproduce it."""
        results = self.run(dataset, name)
        info = run_record(dataset=dataset, prompt=spec_for(name), reader=self.reader, retriever=self.retriever,
                          rewriter=self.rewriter, reranker=self.reranker, corpus=corpus,
                          seeds={"eval": self.settings.seed}, settings=asdict(self.settings))
        info["protocol"] = asdict(self.protocol)
        info["reader_generation"] = self._generation(spec_for(name))
        info["calls"] = self.calls
        report = build_report(results, baseline=CLOSED_BOOK, run_info=info, seed=self.settings.seed)
        if out_dir is not None:
            from reasonir_rag.eval.report import write_report

            report["files"] = {k: str(v) for k, v in write_report(report, out_dir).items()}
        return report

    # ------------------------------------------------------------------ stages
    def _passages(self, name: str, condition: str, questions: list[Question], top_k: int,
                  cost: _Cost) -> Sequence[list[ScoredDocument] | None]:
        if condition == CLOSED_BOOK:
            return [None] * len(questions)
        rewrite, rerank = CONDITIONS[condition]
        index = self.retriever
        assert index is not None  # __init__ checked that the conditions asked for have their parts
        # one fetch size for every condition, so the plain question's retrieval is journaled once for all
        reranks = any(CONDITIONS.get(c, (0, 0))[1] for c in self.settings.conditions)
        s, protocol = self.settings, self.protocol
        instruction = s.instruction
        if instruction is None and s.task is None:
            instruction = protocol.retrieval_instruction
        pipeline = Retriever(index, rewriter=self.rewriter if rewrite else None,
                             reranker=self.reranker if rerank else None, k=top_k,
                             fetch_k=s.candidates if reranks else top_k, task=s.task, instruction=instruction)
        queries = [retrieval_query(name, q, clean=protocol.clean_texts) for q in questions]
        return pipeline.retrieve_many(queries, run=_JournaledStages(self, cost))

    def _query_tokens(self, query: Query, options: SearchOptions) -> int:
        encoder = getattr(self.retriever, "encoder", None)
        if encoder is None:
            return len(query.text.split())
        prefix = encoder.document_prefix if query.prefix_kind == "document" else encoder.query_prefix(
            instruction=options.instruction, task=options.task)
        return min(encoder.count_tokens(prefix + query.text), encoder.config.max_length)

    def _read(self, name: str, spec: Any, questions: list[Question], passages: Sequence[Any], cost: _Cost,
              condition: str) -> list[QuestionOutcome]:
        s, llm = self.settings, self.reader
        generation = self._generation(spec)
        truncate = llm.truncate if s.max_passage_tokens else None
        prompts = [build_messages(name, q, p, max_passage_tokens=s.max_passage_tokens, truncate=truncate,
                                  clean=self.protocol.clean_texts) for q, p in zip(questions, passages, strict=True)]

        def compute(todo: list[Any]) -> list[Any]:
            start = time.perf_counter()
            texts = llm.generate(todo, seed=s.seed, return_exceptions=True, **generation)
            each = (time.perf_counter() - start) / len(todo)
            return [t if isinstance(t, BaseException) else
                    {"text": t, "seconds": each, "tokens": _messages_tokens(llm, p) + llm.count_tokens(t)}
                    for p, t in zip(todo, texts, strict=True)]

        who = getattr(llm, "model_name", repr(llm))
        keys = [Journal.key("reader", reader=who, prompt=prompt_hash(p), generation=generation, seed=s.seed)
                for p in prompts]
        entries = self._journaled(f"reader ({condition})", keys, prompts, compute, batch=s.concurrency,
                                  metas=[{"messages": p} for p in prompts])
        outcomes = []
        for q, entry in zip(questions, entries, strict=True):
            cost.add("reader", entry)
            outcomes.append(self._outcome(q, entry["text"], spec.extract_style))
        return outcomes

    def _outcome(self, question: Question, text: str, style: str) -> QuestionOutcome:
        """The answer read by the protocol's rules: the project's, or ReasonIR's (MMLU: its regexes, then its
        guess; GPQA: its boxed answer, right when it is the gold letter, with ``acc`` when it contains it)."""
        if self.protocol.extraction != "reasonir":
            found = extract_choice(text, style=style, n_choices=len(question.choices), choices=question.choices)
            return QuestionOutcome.from_extraction(question, found)
        if style == "mmlu":
            return QuestionOutcome.from_extraction(question, extract_reasonir_mmlu(text))
        found, answer = extract_reasonir_gpqa(text, len(question.choices))
        outcome = QuestionOutcome.from_extraction(question, found)
        return replace(outcome, substring_match=question.answer_letter.lower() in answer)

    def _generation(self, spec: Any) -> dict[str, Any]:
        """The reader's decoding: the prompt's own, with the run's overrides (what is sent, and reported)."""
        generation = {**spec.generation}
        if self.settings.max_tokens is not None:
            generation["max_tokens"] = self.settings.max_tokens
        if self.settings.temperature is not None:
            generation["temperature"] = self.settings.temperature
        return generation

    def _retriever_identity(self) -> str:
        """What a retrieval's journal key names the retriever by: its description and what its collection holds
        (``content_fingerprint()``: ids and text hashes), so adding or editing documents makes every retrieval
        new. Computed once per run."""
        if self._retriever_key is None:
            content = getattr(self.retriever, "content_fingerprint", None)
            self._retriever_key = repr((_describe(self.retriever), content() if callable(content) else None))
        return self._retriever_key

    # ------------------------------------------------------------------ journal plumbing
    def _journaled(self, stage: str, keys: list[str], items: Sequence[Any],
                   compute: Callable[[list[Any]], list[Any]], *, batch: int,
                   metas: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Values for ``keys``: journaled ones read back, the rest computed ``batch`` at a time and committed
        one by one as each batch returns, each with its ``metas`` entry (what was asked: the query, the
        messages), and counted in :attr:`calls`. Failed items are not recorded; the run stops after the others,
        or right after the batch where the backend reports a transient failure (server down: its retries are
        spent, so the remaining calls would only fail the same way)."""
        kind = stage.split(" ")[0]
        done = fill(self.journal, keys, items, compute, batch=batch, kind=kind, metas=metas,
                    progress=lambda todo: progress(total=todo, desc=stage, unit="question",
                                                   show=self.settings.show_progress))
        counts = self.calls.setdefault(kind, {"new": 0, "journaled": 0})
        counts["new"] += done.new
        counts["journaled"] += done.journaled
        if done.failures:
            saved = sum(key in done.values for key in keys)
            stopped = " (stopped early: the backend is unavailable)" if done.unavailable else ""
            raise LLMError(f"{len(done.failures)} of {len(keys) - done.journaled} {stage} calls failed{stopped}; "
                           f"{saved} of {len(keys)} are saved in {self.journal.path}; rerun to resume: "
                           f"{done.failures[0]}", transient=done.unavailable)
        return [done.values[key] for key in keys]

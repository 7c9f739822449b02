"""``synthesize``: a BRIGHT-format evaluation set from a user's corpus, by ReasonIR's hard-query recipe, checked.

The recipe's steps, in order: passages (the project's chunker), exact-text dedup, seeds by educational value
(:mod:`~reasonir_rag.synth.seeds`), one LLM call per seed for a standalone reasoning query (bounded retries,
:mod:`~reasonir_rag.synth.calls`), the seed as the one positive, optional hard negatives. Then what the recipe does
not do: reject copies, pointers at the passage and near-duplicates, recording why each kept query passed
(:mod:`~reasonir_rag.synth.filters`). Output: :mod:`~reasonir_rag.synth.output`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._common.progress import progress
from reasonir_rag._version import __version__
from reasonir_rag.encoding.instructions import bright_instruction
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.eval.journal import Journal
from reasonir_rag.protocols import LLM
from reasonir_rag.synth import output
from reasonir_rag.synth.calls import CallCounts, CallSettings, Request, run_calls
from reasonir_rag.synth.filters import FilterSettings, QueryFilter, copy_overlap
from reasonir_rag.synth.negatives import BM25_FIRST_RANK, bm25_negatives
from reasonir_rag.synth.parse import parse_negative, parse_queries
from reasonir_rag.synth.prompts import (
    NEGATIVE_PROMPT_SHA256,
    NEGATIVE_RETRY_PROMPT_SHA256,
    QUERY_PROMPT_SHA256,
    QUERY_RETRY_PROMPT_SHA256,
    negative_messages,
    query_messages,
)
from reasonir_rag.synth.seeds import EDU_CLASSIFIER, corpus_passages, describe_selector, load_selector, select_seeds
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthesisSettings:
    """``task`` names the files and picks the query instruction ``eval retrieval`` applies (a BRIGHT task:
    choose the closest to your corpus); ``seeds`` caps the seed passages; ``classifier`` is a hub id or folder
    (``None``: length-only selection)."""

    task: str
    seeds: int = 100
    classifier: str | None = EDU_CLASSIFIER
    min_words: int = 50
    chunk_tokens: int = 512
    overlap: int = 64
    text_field: str = "text"
    calls: CallSettings = field(default_factory=CallSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    bm25_negatives: bool = True
    llm_negatives: bool = False
    negative_words: int = 300
    device: str | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        bright_instruction(self.task)  # an unknown task is named with the known ones
        c = self.calls
        if self.seeds < 1 or c.attempts < 1 or c.concurrency < 1 or c.max_tokens < 1:
            raise InvalidInputError("seeds, attempts, concurrency and max_tokens must be >= 1")


@dataclass
class SynthesisResult:
    out: Path
    examples: int
    documents: int
    manifest: dict[str, Any]


def _progress(desc: str, show: bool) -> Any:
    def open_bar(total: int) -> contextlib.AbstractContextManager[Any]:
        bar: contextlib.AbstractContextManager[Any] = progress(total=total, desc=desc, unit="seed", show=show)
        return bar
    return open_bar


def _neighbours(passages: list[Document]) -> dict[str, set[str]]:
    """Each chunk's adjacent chunks of the same document: they share the chunk overlap, so they are excluded."""
    by_place = {(d.metadata.get("source_id"), d.metadata.get("chunk_index")): d.id for d in passages}
    out: dict[str, set[str]] = {}
    for d in passages:
        src, idx = d.metadata.get("source_id"), d.metadata.get("chunk_index")
        if isinstance(idx, int):
            out[d.id] = {by_place[(src, j)] for j in (idx - 1, idx + 1) if (src, j) in by_place}
    return out


def synthesize(corpus: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], llm: LLM,
               out: str | os.PathLike[str], settings: SynthesisSettings, *,
               journal: str | os.PathLike[str] | None = None) -> SynthesisResult:
    """Build the evaluation set from ``corpus`` (files or folders) into ``out``; resumable through the journal
    (default ``out/journal.sqlite``). Raises :class:`InvalidInputError` for a corpus that cannot make a set and
    :class:`LLMError` when no seed gave a usable query (the manifest and the journal keep what was generated)."""
    s = settings
    out = Path(out)
    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    passages = corpus_passages(paths, chunk_tokens=s.chunk_tokens, overlap=s.overlap, text_field=s.text_field)
    docs = passages.documents
    where = ", ".join(str(p) for p in paths)
    if len(docs) < 2:
        found = "no passages" if not docs else "only one distinct passage"
        raise InvalidInputError(f"the corpus ({where}) has {found} ({passages.load.summary()}); a retrieval set "
                                "needs at least 2 (its seed passages, and others to rank them against)")
    selector, fallback = load_selector(s.classifier, device=s.device, min_words=s.min_words)
    seeds = select_seeds(docs, selector, s.seeds)
    if not seeds:
        hint = "lower --min-words" if selector.kind == "length" else "try --classifier length"
        raise InvalidInputError(f"no passage of {len(docs)} scored >= {selector.min_score} with {selector.name}; "
                                f"{hint}, or check the corpus")
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": "BRIGHT", "task": s.task, "instruction": bright_instruction(s.task),
        "created_by": f"reasonir-rag {__version__} synthesize",
        "corpus": {"paths": [str(p) for p in paths], "files": passages.load.files,
                   "records": passages.load.records, "skipped_records": passages.load.bad_records,
                   "chunks": passages.chunks, "exact_duplicates_removed": passages.duplicates,
                   "passages": len(docs), "chunk_tokens": s.chunk_tokens, "overlap": s.overlap},
        "seed_selection": {**describe_selector(selector, fallback), "asked": s.seeds, "selected": len(seeds)},
        "llm": {"model": llm.model_name, **asdict(s.calls)},
        "prompts": {"query_sha256": QUERY_PROMPT_SHA256, "query_retry_sha256": QUERY_RETRY_PROMPT_SHA256,
                    "negative_sha256": NEGATIVE_PROMPT_SHA256 if s.llm_negatives else None,
                    "negative_retry_sha256": NEGATIVE_RETRY_PROMPT_SHA256 if s.llm_negatives else None},
        "filters": asdict(s.filters),
        "seeds": [{"id": d.id, "score": round(score, 4)} for d, score in seeds],
        "caveats": list(output.CAVEATS),
    }
    with Journal(journal or out / "journal.sqlite") as jl:
        return _generate(jl, llm, out, s, docs, seeds, manifest, CallCounts())


def _generate(jl: Journal, llm: LLM, out: Path, s: SynthesisSettings, docs: list[Document],
              seeds: list[tuple[Document, float]], manifest: dict[str, Any], counts: CallCounts) -> SynthesisResult:
    stats: dict[str, Any] = {"seeds": len(seeds), "llm_calls": asdict(counts)}
    manifest["counts"] = stats
    requests = [Request(d.text, query_messages(d.text), query_messages(d.text, retry=True)) for d, _ in seeds]
    check = QueryFilter(s.filters)

    def usable(i: int, queries: list[str]) -> bool:  # else the seed is retried
        return any(check.passage_problem(q, seeds[i][0].text) is None for q in queries)

    try:
        outcomes = run_calls(jl, llm, "synth-query", (QUERY_PROMPT_SHA256, QUERY_RETRY_PROMPT_SHA256), requests,
                             parse_queries, s.calls, counts, _progress("queries", s.show_progress), accept=usable)
    except LLMError:
        stats["llm_calls"] = asdict(counts)
        output.write_manifest(out, {**manifest, "error": "the LLM became unavailable: rerun to resume"})
        raise
    neighbours = _neighbours(docs)
    rejected: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for rank, ((seed, _), outcome) in enumerate(zip(seeds, outcomes, strict=True)):
        qid = f"q{rank:05d}"
        if not outcome.values:
            last = (outcome.replies or outcome.errors or [""])[-1]
            rejected.append({"seed_id": seed.id, "query": None, "attempts": outcome.attempts,
                             "reason": f"no usable JSON after {outcome.attempts} attempt(s)",
                             "last_reply": last[:2000]})
            continue
        has_query = False
        for query in itertools.chain.from_iterable(outcome.values):  # every attempt's, in order
            if has_query:  # one query per seed, as the recipe's k = 1
                rejected.append({"seed_id": seed.id, "query": query, "reason": "the seed already has a query"})
                continue
            result = check.check(query, seed.text, qid)
            if result.reason is not None:
                rejected.append({"seed_id": seed.id, "query": query, "reason": result.reason,
                                 "checks": result.to_dict(s.filters)})
                continue
            has_query = True
            examples.append({"id": qid, "query": query, "gold_ids": [seed.id], "gold_ids_long": [],
                             "excluded_ids": sorted(neighbours.get(seed.id, ())), "negatives": [],
                             "seed_id": seed.id, "attempts": outcome.attempts,
                             "checks": result.to_dict(s.filters)})
    extra_docs = _add_negatives(jl, llm, s, docs, examples, counts)
    stats.update(
        seeds_without_json=sum(not o.values for o in outcomes),
        seeds_with_retries=sum(o.attempts > 1 and bool(o.values) for o in outcomes),
        queries_parsed=sum(len(v) for o in outcomes for v in o.values), kept=len(examples),
        rejected=_reasons(rejected), bm25_negatives=sum(any(n["kind"] == "bm25" for n in e["checks"]["negatives"])
                                                        for e in examples),
        llm_negatives=len(extra_docs), llm_calls=asdict(counts))
    output.write_jsonl(out / "rejected.jsonl", rejected)
    docs_path, examples_path = output.bright_paths(out, s.task)
    if not examples:
        for stale in (docs_path, examples_path):  # a set from an earlier run would not match this manifest
            stale.unlink(missing_ok=True)
        output.write_manifest(out, {**manifest, "error": "no query was kept"})
        if stats["seeds_without_json"] == len(seeds):
            raise LLMError(f"{llm.model_name} never returned a usable JSON object for any of {len(seeds)} seed(s) "
                           f"({s.calls.attempts} attempt(s) each); its replies are in {out / 'rejected.jsonl'} "
                           f"and {jl.path}")
        raise InvalidInputError(f"all {stats['queries_parsed']} parsed queries were rejected "
                                f"({stats['rejected']}); see {out / 'rejected.jsonl'}")
    n_docs = output.write_jsonl(docs_path, ({"id": d.id, "content": d.text} for d in [*docs, *extra_docs]))
    output.write_jsonl(examples_path, examples)
    output.write_manifest(out, {**manifest, "files": {"documents": str(docs_path), "examples": str(examples_path)}})
    logger.info("%d queries kept of %d seeds; %s", len(examples), len(seeds), examples_path)
    return SynthesisResult(out, len(examples), n_docs, manifest)


def _reasons(rejected: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rejected:
        key = str(r["reason"]).split(" (")[0]
        out[key] = out.get(key, 0) + 1
    return out


def _add_negatives(jl: Journal, llm: LLM, s: SynthesisSettings, docs: list[Document], examples: list[dict[str, Any]],
                   counts: CallCounts) -> list[Document]:
    """Fill each example's ``negatives`` (and its checks); the LLM-written ones come back as new documents."""
    texts = {d.id: d.text for d in docs}
    for e in examples:
        e["checks"]["negatives"] = []
    if s.bm25_negatives:
        mined = bm25_negatives(docs, [e["query"] for e in examples], [e["gold_ids"][0] for e in examples],
                               [set(e["excluded_ids"]) for e in examples])
        for e, neg in zip(examples, mined, strict=True):
            if neg is not None:
                e["negatives"].append(neg["id"])
                e["checks"]["negatives"].append({"kind": "bm25", "first_rank": BM25_FIRST_RANK, **neg})
    if not s.llm_negatives or not examples:
        return []
    requests = [Request(f"{e['query']}\0{texts[e['gold_ids'][0]]}",
                        *(negative_messages(e["query"], texts[e["gold_ids"][0]], words=s.negative_words, retry=r)
                          for r in (False, True))) for e in examples]
    outcomes = run_calls(jl, llm, "synth-negative", (NEGATIVE_PROMPT_SHA256, NEGATIVE_RETRY_PROMPT_SHA256), requests,
                         parse_negative, s.calls, counts, _progress("negatives", s.show_progress))
    written: list[Document] = []
    for e, outcome in zip(examples, outcomes, strict=True):
        text = outcome.value
        if text is None:
            continue
        overlap = copy_overlap(text, texts[e["gold_ids"][0]], n=s.filters.copy_ngram)
        if overlap > s.filters.max_copy_overlap:
            e["checks"]["negatives"].append({"kind": "llm", "dropped": f"copies the positive ({overlap:.2f})"})
            continue
        neg_id = f"{e['id']}-negative"
        written.append(Document(neg_id, text))
        e["negatives"].append(neg_id)
        e["checks"]["negatives"].append({"kind": "llm", "id": neg_id, "copy_overlap": round(overlap, 4)})
    return written


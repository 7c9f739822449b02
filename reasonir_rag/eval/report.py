"""Results of a reader comparison: JSON, a markdown table and a PNG chart.

A runner hands :func:`build_report` one :class:`ConditionResult` per condition (closed-book, RAG,
RAG + rewrite, ...): per-question outcomes plus what each stage cost (tokens, wall seconds). The report
holds accuracy per subject and overall with Wilson (or Clopper-Pearson) intervals and the chance level,
the exact McNemar test and the absolute and relative gains of each condition against the baseline with a
paired bootstrap interval for the difference (paired on the questions both answered), the cost per
question and per stage, and the run record (models, prompt hashes, seeds, corpus fingerprint) passed
in as ``run_info`` (:func:`run_record` gathers it). Everything in it is plain JSON; the markdown and the
chart are rendered from it alone (``render.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._common.names import by_name
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.datasets import Dataset, Question
from reasonir_rag.eval.extract import Extraction
from reasonir_rag.eval.prompts import PromptSpec
from reasonir_rag.eval.render import STAGES, plot_accuracy, render_markdown
from reasonir_rag.eval.stats import (
    INTERVAL_NAMES,
    INTERVALS,
    accuracy,
    accuracy_ci,
    gains,
    mcnemar_exact,
    paired_bootstrap_diff_ci,
)
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class QuestionOutcome:
    """One question under one condition: right or wrong, and whether an answer could be read at all."""

    question_id: str
    subject: str
    correct: bool
    extracted: bool
    predicted: str | None = None
    answer: str = ""
    method: str = ""
    substring_match: bool | None = None  # paper-protocol GPQA: the gold letter occurs in the answer (ReasonIR's acc)
    n_choices: int | None = None  # the choices shown: the chance level is 1 / n_choices

    @classmethod
    def from_extraction(cls, question: Question, extraction: Extraction) -> QuestionOutcome:
        return cls(question.id, question.subject, extraction.index == question.answer_index,
                   extraction.extracted, extraction.letter, question.answer_letter, extraction.method,
                   n_choices=len(question.choices))


@dataclass
class ConditionResult:
    """All outcomes of one condition; ``tokens`` and ``seconds`` are totals per stage over the run."""

    name: str
    outcomes: Sequence[QuestionOutcome]
    tokens: Mapping[str, float] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- run record
def corpus_fingerprint(documents: Iterable[Document]) -> dict[str, Any]:
    """Count and sha256 over (id, text) of the documents, order-independent: names the corpus exactly."""
    digest = hashlib.sha256()
    rows = sorted((d.id, hashlib.sha256(d.text.encode()).hexdigest()) for d in documents)
    for doc_id, text_hash in rows:
        digest.update(f"{doc_id}\0{text_hash}\n".encode())
    return {"documents": len(rows), "sha256": digest.hexdigest()}


def _describe(obj: Any) -> Any:
    if obj is None:
        return None
    fingerprint = getattr(obj, "fingerprint", None)
    if isinstance(fingerprint, Mapping):
        return dict(fingerprint)
    describe = getattr(obj, "describe", None)
    if callable(describe):
        return describe()
    return {"type": type(obj).__name__, "model": getattr(obj, "model_name", None)}


def run_record(
    *, dataset: Dataset | None = None, prompt: PromptSpec | None = None, reader: Any = None,
    retriever: Any = None, rewriter: Any = None, reranker: Any = None, corpus: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None, **extra: Any,
) -> dict[str, Any]:
    """What reproduces a run, as JSON: package and Python versions, the dataset (source, fingerprint,
    selection, hash of question ids), the prompt template hash and decoding, each model's identity, the
    corpus fingerprint and the seeds. Pass the result as ``run_info`` to :func:`build_report`."""
    from reasonir_rag._version import __version__

    record: dict[str, Any] = {
        "reasonir_rag": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset": dataset.describe() if dataset is not None else None,
        "prompt": ({"name": prompt.name, "template_hash": prompt.template_hash, "top_k": prompt.top_k,
                    "generation": prompt.generation} if prompt is not None else None),
        "reader": _describe(reader), "retriever": _describe(retriever), "rewriter": _describe(rewriter),
        "reranker": _describe(reranker), "corpus": dict(corpus) if corpus is not None else None,
        "seeds": dict(seeds or {}),
    }
    record.update(extra)
    return _clean(record)


# ------------------------------------------------------------------------------------------------ build
def _clean(value: Any) -> Any:
    """NaN/inf become None so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _chance(outcomes: Sequence[QuestionOutcome]) -> float | None:
    """Expected accuracy of a uniform guess; None when no outcome says how many choices it had."""
    known = [1 / o.n_choices for o in outcomes if o.n_choices]
    return sum(known) / len(known) if known else None


def _summary(outcomes: Sequence[QuestionOutcome], confidence: float, interval: str) -> dict[str, Any]:
    correct = [o.correct for o in outcomes]
    lo, hi = accuracy_ci(correct, confidence=confidence, method=interval)
    return {"n": len(outcomes), "correct": sum(correct), "unextracted": sum(not o.extracted for o in outcomes),
            "accuracy": accuracy(correct), "ci": [lo, hi], "chance": _chance(outcomes)}


def build_report(
    conditions: Sequence[ConditionResult], *, baseline: str = "closed-book", run_info: Mapping[str, Any] | None = None,
    confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0, interval: str = "wilson",
) -> dict[str, Any]:
    """The full report as a JSON-ready dict (see the module docstring). ``interval``: ``"wilson"`` or
    ``"clopper-pearson"`` for each accuracy; ``n_resamples`` and ``seed`` drive the paired bootstrap of gains."""
    by_name(INTERVALS, interval, "interval method")  # an unknown name fails before any work
    names = [c.name for c in conditions]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"condition names must be unique, got {names}")
    for c in conditions:
        ids = [o.question_id for o in c.outcomes]
        if len(set(ids)) != len(ids):
            raise InvalidInputError(f"condition {c.name!r} has duplicate question ids")
    base = next((c for c in conditions if c.name == baseline), None)
    if base is None:
        logger.warning("no %r condition: gains and McNemar tests are left out", baseline)
    base_by_id = {o.question_id: o.correct for o in base.outcomes} if base else {}
    rows = []
    for c in conditions:
        row: dict[str, Any] = {"name": c.name, **_summary(c.outcomes, confidence, interval)}
        substring = [o.substring_match for o in c.outcomes if o.substring_match is not None]
        if substring:  # ReasonIR's GPQA reports em (accuracy above) and acc (the letter occurs in the answer)
            row["substring_accuracy"] = accuracy(substring)
        subjects: dict[str, list[QuestionOutcome]] = {}
        for o in c.outcomes:
            subjects.setdefault(o.subject, []).append(o)
        row["per_subject"] = {s: _summary(v, confidence, interval) for s, v in sorted(subjects.items())}
        row["vs_baseline"] = _versus(c, base, base_by_id, confidence, n_resamples, seed) if base else None
        n = max(len(c.outcomes), 1)
        stages = [s for s in STAGES if s in c.tokens or s in c.seconds] + sorted(
            (set(c.tokens) | set(c.seconds)) - set(STAGES))
        row["cost"] = {
            "tokens_per_question": {s: float(c.tokens.get(s, 0)) / n for s in stages},
            "seconds_per_stage": {s: float(c.seconds.get(s, 0.0)) for s in stages},
            "seconds_per_question": {s: float(c.seconds.get(s, 0.0)) / n for s in stages},
        }
        row["settings"] = dict(c.settings)
        rows.append(row)
    report = {
        "run": dict(run_info or {}),
        "baseline": baseline if base else None,
        "statistics": {"confidence": confidence, "interval": interval,
                       "ci_method": f"{INTERVAL_NAMES[interval]} per condition and subject",
                       "difference_ci_method": "paired percentile bootstrap over questions",
                       "bootstrap_resamples": n_resamples, "bootstrap_seed": seed,
                       "paired_test": "exact McNemar (two-sided binomial on discordant pairs)"},
        "conditions": rows,
    }
    return _clean(report)


def _versus(c: ConditionResult, base: ConditionResult, base_by_id: Mapping[str, bool], confidence: float,
            n_resamples: int, seed: int) -> dict[str, Any]:
    paired = [(o.correct, base_by_id[o.question_id]) for o in c.outcomes if o.question_id in base_by_id]
    if len(paired) != len(c.outcomes) or len(paired) != len(base_by_id):
        logger.warning("condition %r and %r share %d questions (%d and %d answered): comparing those only",
                       c.name, base.name, len(paired), len(c.outcomes), len(base_by_id))
    cond = [p[0] for p in paired]
    ref = [p[1] for p in paired]
    acc, ref_acc = accuracy(cond), accuracy(ref)
    absolute, relative = gains(acc, ref_acc)
    test = mcnemar_exact(cond, ref)
    return {"n_paired": len(paired), "accuracy": acc, "baseline_accuracy": ref_acc, "absolute_gain": absolute,
            "relative_gain": relative,
            "difference_ci": list(paired_bootstrap_diff_ci(cond, ref, confidence=confidence,
                                                           n_resamples=n_resamples, seed=seed)),
            "mcnemar": {"b": test.b, "c": test.c, "p_value": test.p_value}}


# ------------------------------------------------------------------------------------------------ write
def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str], *, stem: str = "report",
                 chart: bool = True) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md`` and (with ``chart``) ``<stem>.png`` in ``out_dir``; atomic writes."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{stem}.json", "markdown": folder / f"{stem}.md"}
    _atomic_write(paths["json"], json.dumps(report, indent=2, sort_keys=True, allow_nan=False).encode())
    _atomic_write(paths["markdown"], render_markdown(report).encode())
    if chart:
        paths["chart"] = folder / f"{stem}.png"
        tmp = folder / f".{stem}.tmp.png"
        plot_accuracy(report, tmp)
        os.replace(tmp, paths["chart"])
    return paths


__all__ = [  # render_markdown and plot_accuracy are re-exported: callers import them from here
    "ConditionResult", "QuestionOutcome", "build_report", "corpus_fingerprint", "plot_accuracy", "render_markdown",
    "run_record", "write_report",
]

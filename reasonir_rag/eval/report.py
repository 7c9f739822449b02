"""Results of a reader comparison: JSON, a markdown table and a PNG chart.

A runner hands :func:`build_report` one :class:`ConditionResult` per condition (closed-book, RAG,
RAG + rewrite, ...): per-question outcomes plus what each stage cost (tokens, wall seconds). The report
holds accuracy per subject and overall with bootstrap CIs, the exact McNemar test and the absolute and
relative gains of each condition against the baseline (paired on the questions both answered), the cost
per question and per stage, and the run record (models, prompt hashes, seeds, corpus fingerprint) passed
in as ``run_info`` (:func:`run_record` gathers it). Everything in it is plain JSON; the markdown and the
chart are rendered from it alone.
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

from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.datasets import Dataset, Question
from reasonir_rag.eval.extract import Extraction
from reasonir_rag.eval.prompts import PromptSpec
from reasonir_rag.eval.stats import accuracy, bootstrap_ci, gains, mcnemar_exact, paired_bootstrap_diff_ci
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

STAGES = ("encoder", "rewriter", "reranker", "reader")


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

    @classmethod
    def from_extraction(cls, question: Question, extraction: Extraction) -> QuestionOutcome:
        return cls(question.id, question.subject, extraction.index == question.answer_index,
                   extraction.extracted, extraction.letter, question.answer_letter, extraction.method)


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


def _summary(outcomes: Sequence[QuestionOutcome], confidence: float, n_resamples: int, seed: int) -> dict:
    correct = [o.correct for o in outcomes]
    lo, hi = bootstrap_ci(correct, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {"n": len(outcomes), "correct": sum(correct), "unextracted": sum(not o.extracted for o in outcomes),
            "accuracy": accuracy(correct), "ci": [lo, hi]}


def build_report(
    conditions: Sequence[ConditionResult], *, baseline: str = "closed-book", run_info: Mapping[str, Any] | None = None,
    confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> dict[str, Any]:
    """The full report as a JSON-ready dict (see the module docstring)."""
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
        row: dict[str, Any] = {"name": c.name, **_summary(c.outcomes, confidence, n_resamples, seed)}
        substring = [o.substring_match for o in c.outcomes if o.substring_match is not None]
        if substring:  # ReasonIR's GPQA reports em (accuracy above) and acc (the letter occurs in the answer)
            row["substring_accuracy"] = accuracy(substring)
        subjects: dict[str, list[QuestionOutcome]] = {}
        for o in c.outcomes:
            subjects.setdefault(o.subject, []).append(o)
        row["per_subject"] = {s: _summary(v, confidence, n_resamples, seed) for s, v in sorted(subjects.items())}
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
        "statistics": {"confidence": confidence, "bootstrap_resamples": n_resamples, "bootstrap_seed": seed,
                       "ci_method": "percentile bootstrap over questions",
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


# --------------------------------------------------------------------------------------------- markdown
def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _signed_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """Two tables (overall with gains, tests and costs; accuracy per subject) and the run record."""
    rows = report["conditions"]
    stages = [s for s in STAGES if any(s in r["cost"]["tokens_per_question"] for r in rows)]
    stages += sorted({s for r in rows for s in r["cost"]["tokens_per_question"]} - set(stages))
    conf = round(100 * report["statistics"]["confidence"])
    head = ["Condition", "n", "Accuracy %", f"{conf}% CI", "Δ abs (pts)", "Δ rel %", "McNemar p (b/c)",
            "Unextracted"]
    head += [f"tokens/q {s}" for s in stages] + [f"wall s {s}" for s in stages]
    lines = [f"# Results: {report['run'].get('dataset', {}).get('name', 'evaluation')}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vs = r["vs_baseline"]
        ci = r["ci"]
        if vs and r["name"] != report["baseline"]:
            m = vs["mcnemar"]
            gain = [_signed_pct(vs["absolute_gain"]), _signed_pct(vs["relative_gain"]),
                    f"{m['p_value']:.3g} ({m['b']}/{m['c']})"]
        else:
            gain = ["–", "–", "–"]
        cells = [r["name"], str(r["n"]), _pct(r["accuracy"]),
                 f"{_pct(ci[0])}–{_pct(ci[1])}" if ci[0] is not None else "–", *gain, str(r["unextracted"])]
        cells += [f"{r['cost']['tokens_per_question'].get(s, 0):.0f}" for s in stages]
        cells += [f"{r['cost']['seconds_per_stage'].get(s, 0):.1f}" for s in stages]
        lines.append("| " + " | ".join(cells) + " |")
    subjects = sorted({s for r in rows for s in r["per_subject"]})
    lines += ["", "## Accuracy % per subject (n)", "",
              "| Subject | " + " | ".join(r["name"] for r in rows) + " |", "|" + "---|" * (len(rows) + 1)]
    for s in subjects:
        cells = []
        for r in rows:
            v = r["per_subject"].get(s)
            cells.append(f"{_pct(v['accuracy'])} ({v['n']})" if v else "–")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "## Run", "", "```json", json.dumps(report["run"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ chart
def plot_accuracy(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy per condition with its CI as error bars (matplotlib, Agg canvas: no display needed)."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["conditions"]
    names = [r["name"] for r in rows]
    acc, low, high = [], [], []
    for r in rows:
        a = 100 * (r["accuracy"] or 0.0)
        lo, hi = (100 * v if v is not None else a for v in r["ci"])
        acc.append(a)
        low.append(max(0.0, a - lo))
        high.append(max(0.0, hi - a))
    fig = Figure(figsize=(max(4.0, 1.3 * len(rows) + 1.5), 3.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#9e9e9e" if n == report.get("baseline") else "#3b6fb6" for n in names]
    ax.bar(range(len(rows)), acc, yerr=[low, high], capsize=4, color=colors)
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    conf = round(100 * report["statistics"]["confidence"])
    ax.set_title(f"{report['run'].get('dataset', {}).get('name', 'accuracy')}: accuracy with {conf}% CI")
    ax.set_ylim(0, 100)
    for i, a in enumerate(acc):
        ax.text(i, min(a + high[i] + 1.5, 96), f"{a:.1f}", ha="center", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


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

"""A report's markdown tables and PNG chart, rendered from its JSON alone (what ``build_report`` returns).

Older report files stay readable: a report without the interval method name says its intervals were the
bootstrap's, one without a chance level draws no chance line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.eval.stats import INTERVAL_NAMES

STAGES = ("encoder", "rewriter", "reranker", "reader")


# --------------------------------------------------------------------------------------------- markdown
def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _signed_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _ci_text(ci: Sequence[float | None]) -> str:
    return f"{_pct(ci[0])}–{_pct(ci[1])}" if ci[0] is not None else "–"


def _interval_label(statistics: Mapping[str, Any]) -> str:
    """``95% CI (Wilson)``; a report written before the interval was named says its bootstrap."""
    conf = round(100 * statistics["confidence"])
    method = statistics.get("interval")
    return f"{conf}% CI ({INTERVAL_NAMES.get(method, method).split(' ')[0] if method else 'bootstrap'})"


def report_chance(report: Mapping[str, Any]) -> float | None:
    """The chance level of the questions (the baseline's, else the first condition's that knows it)."""
    rows = sorted(report["conditions"], key=lambda r: r["name"] != report.get("baseline"))
    return next((r["chance"] for r in rows if r.get("chance") is not None), None)


def render_markdown(report: Mapping[str, Any]) -> str:
    """Two tables (overall with gains, tests and costs; accuracy per subject) and the run record."""
    rows = report["conditions"]
    stages = [s for s in STAGES if any(s in r["cost"]["tokens_per_question"] for r in rows)]
    stages += sorted({s for r in rows for s in r["cost"]["tokens_per_question"]} - set(stages))
    label = _interval_label(report["statistics"])
    head = ["Condition", "n", "Accuracy %", label, "Δ abs (pts)", "Δ rel %", "McNemar p (b/c)",
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
        cells = [r["name"], str(r["n"]), _pct(r["accuracy"]), _ci_text(ci), *gain, str(r["unextracted"])]
        cells += [f"{r['cost']['tokens_per_question'].get(s, 0):.0f}" for s in stages]
        cells += [f"{r['cost']['seconds_per_stage'].get(s, 0):.1f}" for s in stages]
        lines.append("| " + " | ".join(cells) + " |")
    chance = report_chance(report)
    statistics = report["statistics"]
    lines += ["", f"Chance level: {_pct(chance)}%." if chance is not None else "Chance level: unknown.",
              f"Intervals: {statistics.get('ci_method', 'percentile bootstrap over questions')}; gains: "
              f"{statistics.get('difference_ci_method', 'paired percentile bootstrap over questions')}, "
              f"{statistics['paired_test']}."]
    subjects = sorted({s for r in rows for s in r["per_subject"]})
    lines += ["", f"## Accuracy % per subject [{label}] (n)", "",
              "| Subject | " + " | ".join(r["name"] for r in rows) + " |", "|" + "---|" * (len(rows) + 1)]
    for s in subjects:
        cells = []
        for r in rows:
            v = r["per_subject"].get(s)
            cells.append(f"{_pct(v['accuracy'])} [{_ci_text(v['ci'])}] ({v['n']})" if v else "–")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "## Run", "", "```json", json.dumps(report["run"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ chart
CHANCE_COLOR = "#c0392b"


def _percent_bars(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[list[float]]]:
    """Accuracies in % and their interval as (below, above) error-bar lengths."""
    acc, low, high = [], [], []
    for v in summaries:
        a = 100 * (v["accuracy"] or 0.0)
        lo, hi = (100 * x if x is not None else a for x in v["ci"])
        acc.append(a)
        low.append(max(0.0, a - lo))
        high.append(max(0.0, hi - a))
    return acc, [low, high]


def plot_accuracy(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy per condition with its interval (bars), and below it accuracy per subject (a dot per
    condition with its interval), both with the chance level dashed: a subject whose interval reaches
    chance tells nothing. Matplotlib on an Agg canvas: no display needed."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["conditions"]
    names = [r["name"] for r in rows]
    subjects = sorted({s for r in rows for s in r["per_subject"]})
    chance = report_chance(report)
    panel = max(1.6, 0.12 * len(subjects) * (len(rows) + 1))  # per-subject panel height: a line per dot
    fig = Figure(figsize=(max(6.0, 1.3 * len(rows) + 1.5), 3.8 + (panel + 0.6 if subjects else 0)), dpi=120)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 if subjects else 1, 1, height_ratios=[3.8, panel] if subjects else [1])
    ax = fig.add_subplot(grid[0])
    acc, err = _percent_bars(rows)
    colors = ["#9e9e9e" if n == report.get("baseline") else "#3b6fb6" for n in names]
    ax.bar(range(len(rows)), acc, yerr=err, capsize=4, color=colors)
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    label = _interval_label(report["statistics"])
    ax.set_title(f"{report['run'].get('dataset', {}).get('name', 'accuracy')}: accuracy with {label}")
    ax.set_ylim(0, 100)
    for i, a in enumerate(acc):
        ax.text(i, min(a + err[1][i] + 1.5, 96), f"{a:.1f}", ha="center", fontsize=8)
    if chance is not None:
        ax.axhline(100 * chance, color=CHANCE_COLOR, linestyle="--", linewidth=1.2, label=f"chance {100 * chance:.0f}%")
        ax.legend(loc="upper left", fontsize=8)
    if subjects:
        _plot_subjects(fig.add_subplot(grid[1]), rows, subjects, chance)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def _plot_subjects(ax: Any, rows: Sequence[Mapping[str, Any]], subjects: list[str], chance: float | None) -> None:
    """One row per subject, a dot with its interval per condition, offset so that they do not overlap."""
    step = 0.8 / len(rows)
    for i, r in enumerate(rows):
        present = [j for j, s in enumerate(subjects) if s in r["per_subject"]]
        acc, err = _percent_bars([r["per_subject"][subjects[j]] for j in present])
        ys = [j + (i - (len(rows) - 1) / 2) * step for j in present]
        ax.errorbar(acc, ys, xerr=err, fmt="o", markersize=3, capsize=2, linewidth=1, color=f"C{i}", label=r["name"])
    if chance is not None:
        ax.axvline(100 * chance, color=CHANCE_COLOR, linestyle="--", linewidth=1.2)
    ax.set_yticks(range(len(subjects)), subjects, fontsize=7)
    ax.set_ylim(len(subjects) - 0.5, -0.5)  # first subject on top
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy per subject (%)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(rows), 4), fontsize=7, frameon=False)

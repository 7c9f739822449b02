"""Results of a retrieval comparison: report.json / report.md / report.png, TREC runs and per-query scores.

The reader evaluation's reporting (:mod:`reasonir_rag.eval.report`) for rankings: each system's metrics with
percentile-bootstrap intervals over queries, paired comparisons between systems (the difference of the means,
its paired-bootstrap interval and a two-sided sign-flip randomisation p-value, all over the queries both were
scored on), the caveats of the collection, and what reproduces the run. ``run.<system>.trec`` and
``per_query.jsonl`` sit beside the report so that trec_eval or another test can be run on the same numbers.
A query-length scaling run (:mod:`reasonir_rag.eval.scaling`) adds its table and draws the line plot.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.eval.ir_metrics import per_query_values, shared_queries
from reasonir_rag.eval.report import _atomic_write, _clean
from reasonir_rag.eval.retrieval import RetrievalResult
from reasonir_rag.eval.run_files import safe_name, write_per_query, write_trec_run
from reasonir_rag.eval.stats import bootstrap_ci_of_mean, paired_randomization_test

logger = logging.getLogger(__name__)

PAIRED_METRICS = ("ndcg@10", "recall@100")
SYNTH_MANIFEST = "manifest.json"  # what the synthesizer writes beside a collection it made
SYNTHESIZED_CAVEATS = (
    "This collection was synthesized: each query has one positive (the passage it was written from). The labels "
    "are incomplete, so other relevant documents count as misses and absolute nDCG is a lower bound.",
    "Its queries are written in the style ReasonIR was trained on (reasoning-intensive questions from seed "
    "passages), which may favour ReasonIR: compare systems on it, not absolute numbers with other benchmarks.",
)


def synthesis_manifest(folder: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The synthesizer's manifest in ``folder`` (a BRIGHT-layout root), or None for a collection it did not
    make. An unreadable manifest still marks the collection as synthesized (logged)."""
    if folder is None:
        return None
    path = Path(folder) / SYNTH_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s cannot be read (%s); the collection is still reported as synthesized", path, exc)
        return {"unreadable": str(exc)}
    return manifest if isinstance(manifest, dict) else {"value": manifest}


def caveats_for(manifest: Mapping[str, Any] | None) -> list[str]:
    """What a report must say about a synthesized collection: the two caveats above, then any further ones
    its manifest lists; nothing for a collection without a manifest."""
    if manifest is None:
        return []
    listed = manifest.get("caveats")
    more = [c for c in listed if isinstance(c, str)] if isinstance(listed, list) else []
    return list(dict.fromkeys([*SYNTHESIZED_CAVEATS, *more]))


def _mean_ci(values: Sequence[float], confidence: float, n_resamples: int, seed: int) -> list[float | None]:
    if not values:
        return [None, None]
    lo, hi = bootstrap_ci_of_mean(np.asarray(values, dtype=np.float64), confidence=confidence,
                                  n_resamples=n_resamples, seed=seed)
    return [lo, hi]


def compare(a: RetrievalResult, b: RetrievalResult, metric: str, *, confidence: float = 0.95,
            n_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """``a`` minus ``b`` on ``metric`` over the queries both were scored on: difference, its paired-bootstrap
    interval and the randomisation p-value."""
    qids = shared_queries(a.scores, b.scores)
    x = np.asarray(per_query_values(a.scores, metric, qids), dtype=np.float64)
    y = np.asarray(per_query_values(b.scores, metric, qids), dtype=np.float64)
    diff = x - y
    return {"metric": metric, "n_paired": len(qids), "mean_a": float(x.mean()) if qids else None,
            "mean_b": float(y.mean()) if qids else None, "difference": float(diff.mean()) if qids else None,
            "difference_ci": _mean_ci(list(diff), confidence, n_resamples, seed),
            "p_value": paired_randomization_test(x, y, n_resamples=n_resamples, seed=seed)}


def build_retrieval_report(
    results: Mapping[str, RetrievalResult], *, collection: Mapping[str, Any], run_info: Mapping[str, Any] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None, paired_metrics: Sequence[str] = PAIRED_METRICS,
    synthesized: Mapping[str, Any] | None = None, confidence: float = 0.95, n_resamples: int = 10_000,
    seed: int = 0, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as plain JSON. ``pairs`` are (a, b) system names compared as a - b (default: each system
    against every earlier one); ``synthesized`` is the synthesizer's manifest when the collection has one."""
    names = list(results)
    if pairs is None:
        pairs = [(names[j], names[i]) for i in range(len(names)) for j in range(i + 1, len(names))]
    unknown = sorted({n for pair in pairs for n in pair} - set(names))
    if unknown:
        raise ValueError(f"comparison names systems that were not run: {unknown}")
    systems = []
    for name, result in results.items():
        qids = sorted(result.scores.per_query)
        systems.append({
            "name": name, "n_queries": result.scores.n_queries, "metrics": dict(result.scores.mean),
            "ci": {m: _mean_ci(per_query_values(result.scores, m, qids), confidence, n_resamples, seed)
                   for m in result.scores.mean},
            "settings": result.settings.get("retriever"), "seconds": dict(result.seconds),
            "missing_from_run": len(result.scores.missing_from_run)})
    metrics = [m for m in paired_metrics if all(m in r.scores.mean for r in results.values())]
    comparisons = [{"a": a, "b": b, **compare(results[a], results[b], m, confidence=confidence,
                                              n_resamples=n_resamples, seed=seed)}
                   for a, b in pairs for m in metrics]
    report = {
        "run": dict(run_info or {}), "collection": dict(collection),
        "synthesized": dict(synthesized) if synthesized is not None else None,
        "caveats": caveats_for(synthesized),
        "statistics": {"confidence": confidence, "bootstrap_resamples": n_resamples, "seed": seed,
                       "ci_method": "percentile bootstrap over queries",
                       "paired_test": "two-sided paired sign-flip randomisation test over queries",
                       "difference_ci": "paired percentile bootstrap over queries"},
        "systems": systems, "comparisons": comparisons, **dict(extra or {}),
    }
    return _clean(report)


# --------------------------------------------------------------------------------------------- markdown
def _num(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci: Sequence[float | None]) -> str:
    return "–" if ci[0] is None or ci[1] is None else f"{ci[0]:.4f}–{ci[1]:.4f}"


def render_retrieval_markdown(report: Mapping[str, Any]) -> str:
    """Caveats first, then the systems, the paired comparisons, the scaling table and the run record."""
    conf = round(100 * report["statistics"]["confidence"])
    lines = [f"# Retrieval: {report['collection'].get('name', 'collection')}", ""]
    if report["caveats"]:
        lines += ["**Caveats (synthesized collection):**", ""] + [f"- {c}" for c in report["caveats"]] + [""]
    metrics = list(report["systems"][0]["metrics"]) if report["systems"] else []
    head = ["System", "queries"] + [f"{m} ({conf}% CI)" for m in metrics]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in report["systems"]:
        cells = [s["name"], str(s["n_queries"])] + [f"{_num(s['metrics'][m])} ({_ci(s['ci'][m])})" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    if report["comparisons"]:
        lines += ["", "## Paired comparisons (a − b over shared queries)", "",
                  f"| a | b | metric | n | Δ | {conf}% CI of Δ | p |", "|---|---|---|---|---|---|---|"]
        for c in report["comparisons"]:
            lines.append(f"| {c['a']} | {c['b']} | {c['metric']} | {c['n_paired']} | {_num(c['difference'])} | "
                         f"{_ci(c['difference_ci'])} | {c['p_value']:.3g} |")
    scaling = report.get("scaling")
    if scaling:
        base = scaling["baseline_budget"]
        lines += ["", "## Query-length scaling", "", "| budget | retriever | mean query tokens | "
                  + " | ".join(f"{m} | Δ vs {base} ({conf}% CI), p" for m in scaling["metrics"]) + " |",
                  "|---|---|---|" + "---|---|" * len(scaling["metrics"])]
        for row in scaling["rows"]:
            cells = [str(row["budget"]), row["retriever"], f"{row['mean_query_tokens']:.0f}"]
            for m in scaling["metrics"]:
                vs = row["vs_baseline"].get(m)
                cells += [_num(row["metrics"][m]), "–" if vs is None else
                          f"{_num(vs['difference'])} ({_ci(vs['difference_ci'])}), p={vs['p_value']:.3g}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Query tokens counted with {scaling['tokens_counted_with']}."]
    lines += ["", "## Run", "", "```json", json.dumps(report["run"], indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ chart
def plot_retrieval(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """The scaling lines (score against mean query tokens, one line per retriever) when the report has them,
    else each system's nDCG@10 with its interval (matplotlib, Agg canvas)."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scaling = report.get("scaling")
    if scaling:
        metrics = scaling["metrics"]
        fig = Figure(figsize=(5.0 * len(metrics), 3.8), dpi=120)
        FigureCanvasAgg(fig)
        for i, metric in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), i + 1)
            for retriever in scaling["retrievers"]:
                rows = sorted((r for r in scaling["rows"] if r["retriever"] == retriever),
                              key=lambda r: r["mean_query_tokens"])
                ax.plot([r["mean_query_tokens"] for r in rows], [r["metrics"][metric] for r in rows],
                        marker="o", label=retriever)
                for r in rows:
                    ax.annotate(str(r["budget"]), (r["mean_query_tokens"], r["metrics"][metric]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            ax.set_xlabel("mean query tokens (labels: rewrite budget)")
            ax.set_ylabel(metric)
            ax.legend(fontsize=8)
        fig.suptitle(f"{report['collection'].get('name', '')}: score against query length")
    else:
        systems = report["systems"]
        metric = "ndcg@10" if systems and "ndcg@10" in systems[0]["metrics"] else (
            next(iter(systems[0]["metrics"])) if systems else "ndcg@10")
        values = [s["metrics"].get(metric) or 0.0 for s in systems]
        errors = [[max(0.0, v - (s["ci"][metric][0] if s["ci"][metric][0] is not None else v)) for v, s in
                   zip(values, systems, strict=True)],
                  [max(0.0, (s["ci"][metric][1] if s["ci"][metric][1] is not None else v) - v) for v, s in
                   zip(values, systems, strict=True)]]
        fig = Figure(figsize=(max(4.0, 1.3 * len(systems) + 1.5), 3.8), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.bar(range(len(systems)), values, yerr=errors, capsize=4, color="#3b6fb6")
        ax.set_xticks(range(len(systems)), [s["name"] for s in systems], rotation=20, ha="right")
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
        ax.set_title(f"{report['collection'].get('name', '')}: {metric} with "
                     f"{round(100 * report['statistics']['confidence'])}% CI")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


# ------------------------------------------------------------------------------------------------ write
def write_retrieval_report(report: dict[str, Any], results: Mapping[str, RetrievalResult],
                           out_dir: str | os.PathLike[str], *, chart: bool = True) -> dict[str, str]:
    """report.json, report.md, report.png, run.<system>.trec per system and per_query.jsonl in ``out_dir``;
    the paths are recorded in ``report["files"]``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    tags = {name: safe_name(name) for name in results}
    if len(set(tags.values())) != len(tags):
        raise ValueError(f"system names collide as file names: {sorted(tags)}")
    for name, result in results.items():
        files[f"run:{name}"] = str(write_trec_run(result.run, folder / f"run.{tags[name]}.trec", tags[name]))
    files["per_query"] = str(write_per_query({n: r.scores for n, r in results.items()}, folder / "per_query.jsonl"))
    paths = {"json": folder / "report.json", "markdown": folder / "report.md"}
    files.update({k: str(v) for k, v in paths.items()})
    if chart:
        files["chart"] = str(folder / "report.png")
    report["files"] = files
    _atomic_write(paths["json"], json.dumps(report, indent=2, sort_keys=True, allow_nan=False).encode())
    _atomic_write(paths["markdown"], render_retrieval_markdown(report).encode())
    if chart:
        tmp = folder / ".report.tmp.png"
        plot_retrieval(report, tmp)
        os.replace(tmp, folder / "report.png")
    return files

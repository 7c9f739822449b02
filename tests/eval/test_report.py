"""Reports: numbers consistent with the outcomes, markdown table, a real PNG chart, standard JSON."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from reasonir_rag.eval.datasets import Question
from reasonir_rag.eval.extract import extract_choice
from reasonir_rag.eval.render import CHANCE_COLOR
from reasonir_rag.eval.report import (
    ConditionResult,
    QuestionOutcome,
    build_report,
    plot_accuracy,
    render_markdown,
    write_report,
)
from reasonir_rag.eval.stats import clopper_pearson_interval, mcnemar_exact, wilson_interval

SUBJECTS = ("anatomy", "college_physics")


def _outcomes(pattern: list[int], unextracted: int = 0, subjects: tuple[str, ...] = SUBJECTS,
              n_choices: int | None = 4) -> list[QuestionOutcome]:
    return [QuestionOutcome(f"q{i}", subjects[i % len(subjects)], bool(c), i >= unextracted, "A" if c else "B", "A",
                            n_choices=n_choices) for i, c in enumerate(pattern)]


@pytest.fixture
def conditions():
    closed = [1] * 20 + [0] * 20  # 50%
    rag = [1] * 18 + [0] * 2 + [1] * 8 + [0] * 12  # 26/40: b = 8, c = 2
    return [
        ConditionResult("closed-book", _outcomes(closed, unextracted=3), tokens={"reader": 40 * 300},
                        seconds={"reader": 80.0}),
        ConditionResult("rag", _outcomes(rag), tokens={"encoder": 40 * 50, "reader": 40 * 900},
                        seconds={"encoder": 2.0, "reader": 120.0}, settings={"retriever": "minilm", "k": 3}),
    ]


RUN_INFO = {"dataset": {"name": "mmlu", "fingerprint": "abc"}, "reader": {"model": "SmolLM2-135M-Instruct"},
            "prompt_template_hash": "f00", "seeds": {"bootstrap": 0, "selection": 0}}


def test_report_numbers_are_consistent(conditions):
    report = build_report(conditions, run_info=RUN_INFO, n_resamples=2000)
    closed, rag = report["conditions"]
    assert report["baseline"] == "closed-book" and report["run"] == RUN_INFO
    assert (closed["n"], closed["correct"], closed["accuracy"], closed["unextracted"]) == (40, 20, 0.5, 3)
    assert rag["accuracy"] == 26 / 40 and rag["ci"][0] < rag["accuracy"] < rag["ci"][1]
    vs = rag["vs_baseline"]
    expected = mcnemar_exact([o.correct for o in conditions[1].outcomes],
                             [o.correct for o in conditions[0].outcomes])
    assert vs["mcnemar"] == {"b": 8, "c": 2, "p_value": expected.p_value}
    assert vs["absolute_gain"] == pytest.approx(0.15) and vs["relative_gain"] == pytest.approx(0.3)
    assert vs["difference_ci"][0] < 0.15 < vs["difference_ci"][1] and vs["n_paired"] == 40
    assert closed["vs_baseline"]["mcnemar"] == {"b": 0, "c": 0, "p_value": 1.0}
    assert set(rag["per_subject"]) == set(SUBJECTS)
    assert sum(s["n"] for s in rag["per_subject"].values()) == 40
    assert sum(s["correct"] for s in rag["per_subject"].values()) == 26
    assert rag["cost"]["tokens_per_question"] == {"encoder": 50.0, "reader": 900.0}
    assert rag["cost"]["seconds_per_stage"] == {"encoder": 2.0, "reader": 120.0}
    assert rag["cost"]["seconds_per_question"]["reader"] == 3.0
    assert rag["settings"] == {"retriever": "minilm", "k": 3}
    # accuracy intervals are Wilson's, per condition and per subject; the chance level comes with them
    assert rag["ci"] == list(wilson_interval(26, 40)) and rag["chance"] == 0.25
    assert rag["per_subject"]["anatomy"]["ci"] == list(wilson_interval(13, 20))  # the even questions: 9 + 4 right
    assert report["statistics"]["interval"] == "wilson"
    assert report["statistics"]["ci_method"] == "Wilson score interval per condition and subject"
    assert report["statistics"]["difference_ci_method"] == "paired percentile bootstrap over questions"
    # recomputed identically (seeded bootstrap)
    assert build_report(conditions, run_info=RUN_INFO, n_resamples=2000) == report


def test_markdown_and_files(conditions, tmp_path):
    report = build_report(conditions, run_info=RUN_INFO, n_resamples=500)
    md = render_markdown(report)
    assert md.startswith("# Results: mmlu")
    header = next(line for line in md.splitlines() if line.startswith("| Condition"))
    for column in ("95% CI", "McNemar p (b/c)", "Δ rel %", "tokens/q encoder", "tokens/q reader",
                   "wall s encoder", "Unextracted"):
        assert column in header
    rag_row = next(line for line in md.splitlines() if line.startswith("| rag |"))
    cells = [c.strip() for c in rag_row.strip("|").split("|")]
    assert cells[:3] == ["rag", "40", "65.0"] and cells[4:6] == ["+15.0", "+30.0"]
    assert cells[6].endswith("(8/2)")
    lo, hi = wilson_interval(10, 20)  # closed-book on anatomy: 10 of 20
    assert f"| anatomy | 50.0 [{100 * lo:.1f}–{100 * hi:.1f}] (20) |" in md
    assert "| 95% CI (Wilson) |" in header and "Chance level: 25.0%." in md
    assert "Wilson score interval per condition and subject; gains: paired percentile bootstrap" in md
    paths = write_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text()) == report
    assert paths["markdown"].read_text() == md
    png = paths["chart"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    image = pytest.importorskip("matplotlib.image").imread(paths["chart"])
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md", "report.png"]


def test_missing_baseline_partial_overlap_and_nan_free_json(conditions, caplog):
    with caplog.at_level(logging.WARNING):
        report = build_report([conditions[1]], n_resamples=100)
    assert report["baseline"] is None and report["conditions"][0]["vs_baseline"] is None
    assert "no 'closed-book' condition" in caplog.text
    partial = ConditionResult("rag", list(conditions[1].outcomes)[:30])
    with caplog.at_level(logging.WARNING):
        report = build_report([conditions[0], partial], n_resamples=100)
    assert report["conditions"][1]["vs_baseline"]["n_paired"] == 30
    assert "share 30 questions" in caplog.text
    empty = build_report([ConditionResult("closed-book", [])], n_resamples=100)
    assert empty["conditions"][0]["accuracy"] is None and empty["conditions"][0]["ci"] == [None, None]
    json.dumps(empty, allow_nan=False)
    render_markdown(empty)


def test_bad_inputs(conditions):
    with pytest.raises(ValueError, match="condition names must be unique"):
        build_report([conditions[0], conditions[0]])
    dup = ConditionResult("x", [conditions[0].outcomes[0]] * 2)
    with pytest.raises(ValueError, match="duplicate question ids"):
        build_report([dup])


def test_outcome_from_extraction():
    q = Question("mmlu/anatomy/test/0", "anatomy", "x?", ("a", "b", "c", "d"), 2)
    right = QuestionOutcome.from_extraction(q, extract_choice("so the answer is (C)"))
    assert (right.correct, right.extracted, right.predicted, right.answer, right.method) == (
        True, True, "C", "C", "answer_is")
    none = QuestionOutcome.from_extraction(q, extract_choice("no idea", style="gpqa"))
    assert (none.correct, none.extracted, none.predicted) == (False, False, None)
    guess = QuestionOutcome.from_extraction(q, extract_choice("no idea", style="gpqa", random_fallback_seed=1,
                                                              key=q.id))
    assert guess.method == "random" and not guess.extracted


def test_run_record_names_everything_that_determines_the_run(repo_data):
    from reasonir_rag.eval.bm25 import BM25Retriever
    from reasonir_rag.eval.mmlu import load_mmlu
    from reasonir_rag.eval.prompts import MMLU_SPEC
    from reasonir_rag.eval.report import corpus_fingerprint, run_record
    from reasonir_rag.types import Document

    docs = [Document("a", "Muscles contract."), Document("b", "Bones support the body.")]
    dataset = load_mmlu(repo_data / "mmlu", subjects=["anatomy"], sample=5, seed=2)
    record = run_record(dataset=dataset, prompt=MMLU_SPEC, retriever=BM25Retriever(docs),
                        corpus=corpus_fingerprint(docs), seeds={"selection": 2, "bootstrap": 0}, condition_k=3)
    json.dumps(record, allow_nan=False)
    assert record["dataset"]["n_questions"] == 5 and record["dataset"]["fingerprint"] == dataset.fingerprint
    assert record["dataset"]["selection"] == {"subjects": ["anatomy"], "sample": 5, "per_subject": None}
    assert record["prompt"]["template_hash"] == MMLU_SPEC.template_hash
    assert record["retriever"]["retriever"] == "bm25s" and record["seeds"]["selection"] == 2
    assert record["condition_k"] == 3 and record["reader"] is None
    assert corpus_fingerprint(docs[::-1]) == record["corpus"]  # order-independent
    assert corpus_fingerprint([docs[0], Document("b", "Bones move.")])["sha256"] != record["corpus"]["sha256"]


def test_clopper_pearson_on_request_and_no_zero_width_interval(conditions):
    perfect = ConditionResult("rag", _outcomes([1] * 10))
    report = build_report([conditions[0], perfect], n_resamples=200, interval="clopper-pearson")
    row = report["conditions"][1]
    assert report["statistics"]["interval"] == "clopper-pearson"
    assert row["ci"] == list(clopper_pearson_interval(10, 10)) and row["ci"][1] == 1.0 and row["ci"][0] < 0.75
    assert all(v["ci"][1] - v["ci"][0] > 0.2 for v in row["per_subject"].values())  # 5 of 5: not "certain"
    assert "95% CI (Clopper-Pearson)" in render_markdown(report)
    with pytest.raises(ValueError, match="unknown interval method 'bootstrap'"):
        build_report(conditions, interval="bootstrap")


def _chance_pixels(png_path) -> int:
    image = pytest.importorskip("matplotlib.image").imread(png_path)[..., :3]
    rgb = np.array([int(CHANCE_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image - rgb).max(axis=-1) < 0.04).sum())


def test_chart_draws_chance_and_a_per_subject_panel(conditions, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    two = build_report(conditions, run_info=RUN_INFO, n_resamples=200)
    eight_subjects = tuple(f"subject_{i}" for i in range(8))
    many = build_report([ConditionResult(c.name, _outcomes([int(o.correct) for o in c.outcomes],
                                                           subjects=eight_subjects)) for c in conditions],
                        run_info=RUN_INFO, n_resamples=200)
    unknown = build_report([ConditionResult(c.name, _outcomes([int(o.correct) for o in c.outcomes], n_choices=None))
                            for c in conditions], run_info=RUN_INFO, n_resamples=200)
    assert unknown["conditions"][0]["chance"] is None and "Chance level: unknown." in render_markdown(unknown)
    shapes, dashes = {}, {}
    for name, report in {"two": two, "many": many, "unknown": unknown}.items():
        path = plot_accuracy(report, tmp_path / f"{name}.png")
        shapes[name] = image.imread(path).shape
        dashes[name] = _chance_pixels(path)
    assert dashes["unknown"] == 0 and dashes["two"] > 200 and dashes["many"] > dashes["two"]  # longer vertical line
    assert shapes["many"][0] > shapes["two"][0] > 3.8 * 120  # the subject panel grows with the subjects
    assert shapes["two"][1] == shapes["many"][1]


def test_older_reports_still_render(conditions, tmp_path):
    """A report.json written before the interval was named (bootstrap CIs, no chance level) still renders."""
    report = build_report(conditions, run_info=RUN_INFO, n_resamples=200)
    old = json.loads(json.dumps(report))
    for key in ("interval", "difference_ci_method"):
        del old["statistics"][key]
    old["statistics"]["ci_method"] = "percentile bootstrap over questions"
    for row in old["conditions"]:
        del row["chance"]
        for v in row["per_subject"].values():
            del v["chance"]
    md = render_markdown(old)
    assert "| 95% CI (bootstrap) |" in md and "Chance level: unknown." in md
    assert plot_accuracy(old, tmp_path / "old.png").stat().st_size > 5000

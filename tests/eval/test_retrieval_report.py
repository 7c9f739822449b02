"""Retrieval reporting on real runs from the shipped SciFact: TREC run files, paired tests, the report files and
the caveats of a synthesized (BRIGHT-layout, manifest.json) collection."""

from __future__ import annotations

import json
import random

import pytest

from reasonir_rag.eval.bm25 import BM25Retriever
from reasonir_rag.eval.ir_data import IRCollection, load_beir, subsample
from reasonir_rag.eval.ir_metrics import evaluate_run
from reasonir_rag.eval.retrieval import RetrievalResult, evaluate_retrieval
from reasonir_rag.eval.retrieval_report import (
    SYNTHESIZED_CAVEATS,
    build_retrieval_report,
    compare,
    render_retrieval_markdown,
    write_retrieval_report,
)
from reasonir_rag.eval.run_files import read_trec_run, trec_lines, write_trec_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scifact_small(repo_data) -> IRCollection:
    return subsample(load_beir(repo_data / "scifact", "test"), n_queries=30, n_other_docs=150, seed=0)


@pytest.fixture(scope="module")
def minilm_result(scifact_small, minilm_encoder) -> RetrievalResult:
    return evaluate_retrieval(scifact_small, minilm_encoder, top_k=100)


def _random_result(collection: IRCollection, seed: int = 0) -> RetrievalResult:
    """A seeded random ranking of the whole collection: the floor a retriever must clear."""
    rng = random.Random(seed)
    run = {q: {d: rng.random() for d in collection.corpus} for q in collection.queries}
    return RetrievalResult(collection.name, evaluate_run(collection.qrels, run), run, settings={"retriever": "random"})


def test_trec_run_file_parses_back_into_the_same_run(scifact_small, minilm_result, tmp_path):
    path = write_trec_run(minilm_result.run, tmp_path / "run.minilm.trec", "dense:minilm")
    lines = path.read_text().splitlines()
    assert len(lines) == 30 * 100 and all(len(line.split()) == 6 for line in lines)
    first = lines[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "dense_minilm"  # the tag has no colon
    run, tags = read_trec_run(path)
    assert run == minilm_result.run and tags == {"dense_minilm"}  # float for float
    assert evaluate_run(scifact_small.qrels, run).mean == minilm_result.scores.mean
    scores = [float(line.split()[4]) for line in lines[:100]]
    assert scores == sorted(scores, reverse=True)
    (tmp_path / "bad.trec").write_text(lines[0] + "\n" + "q1 Q0 d1 x\n")
    with pytest.raises(ValueError, match=r"bad\.trec:2: a TREC run line has 6 columns, found 4"):
        read_trec_run(tmp_path / "bad.trec")
    with pytest.raises(ValueError, match="contains whitespace"):
        trec_lines({"q 1": {"d": 1.0}}, "x")


def test_paired_test_sanity_on_real_runs(scifact_small, minilm_result):
    same = compare(minilm_result, minilm_result, "ndcg@10")
    assert same["p_value"] == 1.0 and same["difference"] == 0.0 and same["n_paired"] == 30
    assert same["difference_ci"] == [0.0, 0.0]
    floor = compare(minilm_result, _random_result(scifact_small), "ndcg@10")
    assert floor["difference"] > 0.4 and floor["p_value"] < 0.001, floor
    assert floor["difference_ci"][0] > 0.3
    reverse = compare(_random_result(scifact_small), minilm_result, "ndcg@10")
    assert reverse["difference"] == pytest.approx(-floor["difference"]) and reverse["p_value"] < 0.001
    bm25 = evaluate_retrieval(scifact_small, BM25Retriever(scifact_small.corpus.values()), top_k=100)
    close = compare(minilm_result, bm25, "recall@100")
    assert 0 < close["p_value"] <= 1 and close["difference_ci"][0] <= close["difference"] <= close["difference_ci"][1]


def test_report_files_for_several_systems(scifact_small, minilm_result, tmp_path):
    results = {"dense:minilm": minilm_result, "random": _random_result(scifact_small)}
    report = build_retrieval_report(results, collection=scifact_small.describe(), run_info={"seeds": {"bootstrap": 0}},
                                    n_resamples=2000)
    assert [s["name"] for s in report["systems"]] == ["dense:minilm", "random"]
    assert {(c["a"], c["b"], c["metric"]) for c in report["comparisons"]} == {
        ("random", "dense:minilm", "ndcg@10"), ("random", "dense:minilm", "recall@100")}
    ndcg = report["systems"][0]
    lo, hi = ndcg["ci"]["ndcg@10"]
    assert lo < ndcg["metrics"]["ndcg@10"] < hi
    files = write_retrieval_report(report, results, tmp_path)
    assert (tmp_path / "report.png").read_bytes()[:8] == PNG_MAGIC
    assert read_trec_run(tmp_path / "run.dense_minilm.trec")[0] == minilm_result.run
    rows = [json.loads(line) for line in (tmp_path / "per_query.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and {r["system"] for r in rows} == set(results)
    mine = {r["query_id"]: r["ndcg@10"] for r in rows if r["system"] == "dense:minilm"}
    assert mine == {q: v["ndcg@10"] for q, v in minilm_result.scores.per_query.items()}
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["files"] == files and saved["caveats"] == [] and saved["synthesized"] is None
    assert "Caveats" not in render_retrieval_markdown(saved)
    with pytest.raises(ValueError, match="not run"):
        build_retrieval_report(results, collection={}, pairs=[("dense:minilm", "bm25")])


# --------------------------------------------------------------------------------- the CLI, BEIR vs synthesized
def _write_bright_layout(root, collection: IRCollection, task: str, manifest: dict | None) -> None:
    """The collection in BRIGHT's layout written by the synthesizer's own writer (one gold id per query, its extra
    fields, and its manifest when ``manifest`` is given)."""
    from reasonir_rag.synth.output import bright_paths, write_jsonl, write_manifest

    documents, examples = bright_paths(root, task)
    write_jsonl(documents, ({"id": d.id, "content": d.text} for d in collection.corpus.values()))
    write_jsonl(examples, ({"id": q, "query": collection.queries[q], "excluded_ids": [], "gold_ids_long": [],
                            "gold_ids": sorted(d for d, r in collection.qrels[q].items() if r > 0)[:1],
                            "negatives": [], "seed_id": q, "checks": {}} for q in collection.queries))
    if manifest is not None:
        write_manifest(root, manifest)


def _cli(args, capsys):
    from reasonir_rag.cli.main import main

    code = main(["eval", "retrieval", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_cli_caveats_for_a_synthesized_collection_only(scifact_small, repo_data, tmp_path, capsys):
    from reasonir_rag.synth.output import CAVEATS

    _write_bright_layout(tmp_path / "synth", scifact_small, "biology", {"caveats": list(CAVEATS), "seed": 0})
    _write_bright_layout(tmp_path / "plain", scifact_small, "biology", None)
    common = ["--task", "biology", "--retriever", "bm25", "--queries", "10", "--other-docs", "50"]
    out = _cli(["--bright", str(tmp_path / "synth"), *common, "--out", str(tmp_path / "r1")], capsys)
    assert "caveats (synthesized collection)" in out and "lower bound" in out
    report = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert report["caveats"][:2] == list(SYNTHESIZED_CAVEATS) and report["synthesized"]["seed"] == 0
    assert report["caveats"] == list(CAVEATS) and len(CAVEATS) == 3  # the two every report says, then the LLM one
    markdown = (tmp_path / "r1" / "report.md").read_text()
    assert "Caveats (synthesized collection)" in markdown and "compare systems" in markdown
    assert markdown.index("Caveats") < markdown.index("| System")  # said before the numbers
    out = _cli(["--bright", str(tmp_path / "plain"), *common, "--json"], capsys)
    assert json.loads(out)["caveats"] == [] and json.loads(out)["synthesized"] is False
    out = _cli(["--beir", str(repo_data / "scifact"), "--retriever", "bm25", "--retriever", "dense", "--encoder",
                "minilm", "--queries", "10", "--other-docs", "50", "--out", str(tmp_path / "r2")], capsys)
    assert "synthesized" not in out and "lower bound" not in out
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert report["caveats"] == [] and [s["name"] for s in report["systems"]] == ["bm25", "dense:minilm"]
    assert {p.name for p in (tmp_path / "r2").iterdir()} >= {"report.json", "report.md", "report.png",
                                                           "run.bm25.trec", "run.dense_minilm.trec", "per_query.jsonl"}
    run = report["run"]
    assert run["systems"]["dense:minilm"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert run["systems"]["bm25"]["config"] == "bm25s" and run["protocol"]["name"] == "default"
    assert run["versions"]["numpy"] and run["seeds"]["sample"] == 0 and run["reasonir_rag"]
    assert run["command"][:3] == ["reasonir-rag", "eval", "retrieval"] and "--encoder" in run["command"]
    assert [c["p_value"] for c in report["comparisons"]] and all(0 < c["p_value"] <= 1 for c in report["comparisons"])

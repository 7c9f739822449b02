"""Query-length scaling on the shipped SciFact: real rewrites by SmolLM2 on the vLLM fixture server, BM25 and
MiniLM, journaled rewrites."""

from __future__ import annotations

import json

import pytest

from reasonir_rag.eval.bm25 import BM25Retriever
from reasonir_rag.eval.ir_data import IRCollection, load_beir, subsample
from reasonir_rag.eval.journal import Journal
from reasonir_rag.eval.retrieval_report import build_retrieval_report, render_retrieval_markdown, write_retrieval_report
from reasonir_rag.eval.scaling import evaluate_scaling, parse_budgets, rewrite_at_budgets, scaling_pairs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scifact_tiny(repo_data) -> IRCollection:
    return subsample(load_beir(repo_data / "scifact", "test"), n_queries=3, n_other_docs=30, seed=0)


@pytest.fixture(scope="module")
def smollm2(vllm_server, smollm2_dir):
    from reasonir_rag.llm import OpenAICompatibleLLM

    return OpenAICompatibleLLM(vllm_server.model, base_url=vllm_server.base_url, tokenizer=str(smollm2_dir))


class CountingLLM:
    """The real LLM, with every prompt it is sent counted (a spy, not a mock: the answers are SmolLM2's)."""

    def __init__(self, llm):
        self.llm, self.prompts = llm, 0

    def generate(self, prompts, **kwargs):
        self.prompts += len(prompts)
        return self.llm.generate(prompts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.llm, name)


def test_parse_budgets():
    assert parse_budgets("512, 0,128,128") == [0, 128, 512]
    with pytest.raises(ValueError, match="'x' is not an integer"):
        parse_budgets("0,x")
    with pytest.raises(ValueError, match="negative"):
        parse_budgets("-1")


def test_scaling_rows_plot_and_journaled_rewrites(scifact_tiny, smollm2, minilm_encoder, tmp_path):
    llm = CountingLLM(smollm2)
    budgets = [0, 8, 24]
    with Journal(tmp_path / "journal.sqlite") as journal:
        queries = rewrite_at_budgets(scifact_tiny, budgets, llm=llm, journal=journal)
    assert llm.prompts == 3 * 2  # budget 0 is the original query: no call
    assert queries[0] == scifact_tiny.queries
    for budget in (8, 24):
        for qid, text in queries[budget].items():
            assert text.startswith(scifact_tiny.queries[qid] + "\n\n") and len(text) > len(scifact_tiny.queries[qid])
    with Journal(tmp_path / "journal.sqlite") as journal:  # a rerun: everything comes from the journal
        again = rewrite_at_budgets(scifact_tiny, budgets, llm=llm, journal=journal)
        assert len(list(journal.items("rewrite"))) == 6
    assert llm.prompts == 6 and again == queries
    retrievers = {"bm25": BM25Retriever(scifact_tiny.corpus.values()), "dense:minilm": minilm_encoder}
    result = evaluate_scaling(scifact_tiny, retrievers, queries, count_tokens=smollm2.count_tokens,
                              tokens_counted_with="SmolLM2", n_resamples=500)
    rows = result.table["rows"]
    assert [(r["budget"], r["retriever"]) for r in rows] == [(b, n) for b in budgets for n in retrievers]
    tokens = {r["budget"]: r["mean_query_tokens"] for r in rows}
    assert tokens[0] < tokens[8] < tokens[24]
    assert all(r["vs_baseline"] == {} for r in rows if r["budget"] == 0)
    base = {r["retriever"]: r["metrics"]["ndcg@10"] for r in rows if r["budget"] == 0}
    for r in rows[2:]:
        vs = r["vs_baseline"]["ndcg@10"]
        assert vs["n_paired"] == 3 and 0 < vs["p_value"] <= 1
        assert vs["difference"] == pytest.approx(r["metrics"]["ndcg@10"] - base[r["retriever"]])
    report = build_retrieval_report(result.results, collection=scifact_tiny.describe(), pairs=scaling_pairs(result),
                                    extra={"scaling": result.table}, n_resamples=500)
    assert {(c["a"], c["b"]) for c in report["comparisons"]} == {(f"dense:minilm@{b}", f"bm25@{b}") for b in budgets}
    files = write_retrieval_report(report, result.results, tmp_path / "out")
    assert (tmp_path / "out" / "report.png").read_bytes()[:8] == PNG_MAGIC
    assert sum(name.startswith("run:") for name in files) == 6
    table = render_retrieval_markdown(json.loads((tmp_path / "out" / "report.json").read_text()))
    scaling_lines = table.split("## Query-length scaling")[1].split("## Run")[0]
    assert sum(line.startswith(f"| {b} | {n} |") for b in budgets for n in retrievers
               for line in scaling_lines.splitlines()) == 6


def test_cli_scaling_makes_no_new_llm_call_on_rerun(repo_data, vllm_server, smollm2_dir, tmp_path, capsys,
                                                    monkeypatch):
    from reasonir_rag.cli.main import main
    from reasonir_rag.llm import OpenAICompatibleLLM

    calls = []
    real = OpenAICompatibleLLM.generate

    def counted(self, prompts, **kwargs):
        calls.append(len(prompts))
        return real(self, prompts, **kwargs)

    monkeypatch.setattr(OpenAICompatibleLLM, "generate", counted)
    args = ["eval", "retrieval", "--beir", str(repo_data / "scifact"), "--queries", "2", "--other-docs", "20",
            "--retriever", "bm25", "--rewrite-budgets", "0,8", "--llm", f"openai:{vllm_server.model}",
            "--base-url", vllm_server.base_url, "--tokenizer", str(smollm2_dir),
            "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert sum(calls) == 2 and set(first["systems"]) == {"bm25@0", "bm25@8"}
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["scaling"]["rows"]) == 2 and (tmp_path / "report.png").is_file()
    assert report["run"]["rewriter_llm"]["model"] == vllm_server.model
    assert main(args) == 0
    assert sum(calls) == 2 and json.loads(capsys.readouterr().out)["systems"] == first["systems"]
    assert main([*args[:-3], "--rewrite-budgets", "0,8"]) == 2  # the journal and report need --out
    assert "needs --out" in capsys.readouterr().err

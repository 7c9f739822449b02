"""`reasonir-rag demo` end to end on 240 real OpenStax passages, real MiniLM, real SmolLM2-135M, real Chroma.

The first run indexes, shows the pipeline on the three showcase questions and evaluates 2 MMLU questions
closed-book and with RAG; the second run must reuse the index and the journal (nothing encoded, no LLM call)
and print the same results; a run killed half-way resumes with only the missing LLM calls.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
from types import SimpleNamespace

import pytest

from reasonir_rag.cli.main import main
from reasonir_rag.demo.config import PAPER_ENCODER, PAPER_LLM, collection_name, resolve_config

N_PASSAGES = 240


def run_cli(args: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    assert code == 0, out.getvalue()
    return out.getvalue()


def results_part(text: str) -> str:
    """What must not change between runs: the showcase and the evaluation table."""
    return text[text.index("== pipeline") : text.index("report:")]


def llm_calls(text: str) -> tuple[int, int, int, int]:
    """(prompts generated, prompts scored, journal entries, entries added by this run) from the last lines."""
    m = re.search(r"LLM calls:\s+(\d+) generated, (\d+) scored now; journal .*: (\d+) results, (\d+) added", text)
    assert m, text
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))


@pytest.fixture(scope="module")
def demo(demo_corpus, repo_data, offline_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-out")
    args = ["demo", "--data", str(demo_corpus), "--mmlu", str(repo_data / "mmlu"), "--out", str(out),
            "--limit", "2", "--candidates", "5", "--rewrite-tokens", "24", "--reader-tokens", "16", "--no-progress"]
    with pytest.MonkeyPatch.context() as mp:  # the offline profile's SmolLM2 comes from the session's cache
        mp.setenv("REASONIR_OFFLINE_CACHE", str(offline_cache))
        first = run_cli(args)
        first_summary = json.loads((out / "summary.json").read_text())
        second = run_cli(args)
        second_summary = json.loads((out / "summary.json").read_text())
    return SimpleNamespace(out=out, args=args, first=first, second=second, cache=offline_cache,
                           summaries=(first_summary, second_summary))


def test_first_run_prints_every_section(demo):
    text = demo.first
    assert text.startswith("reasonir-rag demo, profile offline")
    assert "all-MiniLM-L6-v2 as an offline stand-in for reasonir/ReasonIR-8B" in text
    assert "HuggingFaceTB/SmolLM2-135M-Instruct as an offline stand-in for Qwen/Qwen2.5-7B-Instruct" in text
    assert "near chance" in text and "embedded up to 128 tokens" in text
    where = demo.out / "chroma"
    assert f"collection openstax-minilm in {where}: {N_PASSAGES} records; {N_PASSAGES} encoded now" in text
    blocks = text.split("\nQ")[1:]
    assert [b.split("]")[0] for b in blocks] == ["1 [college_biology", "2 [anatomy", "3 [high_school_chemistry"]
    # each question's passages come from the book that answers it (MiniLM on real text)
    for block, book in zip(blocks, ["Microbiology", "Anatomy and Physiology 2e", "Chemistry 2e"], strict=True):
        assert "rewrite:" in block and "reader:" in block
        before = block.split("top 3 retrieved (before reranking):")[1].split("top 3 after reranking")[0]
        after = block.split("top 3 after reranking 5 candidates:")[1].split("reader:")[0]
        assert before.count(book) == 3, before
        assert len(re.findall(r"rerank \d\.\d\d/5, retrieval 0\.\d{3}", after)) == 3
        assert re.search(r"answer: ([A-D]|none extracted) \(correct: [A-D]\) -> (correct|wrong)", block)
    assert "closed-book vs RAG on 2 MMLU questions" in text
    assert re.search(r"\| closed-book \| 2 \| \d+\.\d \|", text) and re.search(r"\| rag \| 2 \| \d+\.\d \|", text)
    generated, scored, entries, added = llm_calls(text)
    assert (generated, scored) == (3 + 3 + 4, 15)  # rewrites + showcase reads + 2 x 2 eval reads; 3 x 5 reranks
    assert entries == added == 3 + 3 + 3 + 2 + 4  # showcase; eval retrievals (rag) and reads


def test_report_files(demo):
    folder = demo.out / "eval"
    report = json.loads((folder / "report.json").read_text())
    assert [c["name"] for c in report["conditions"]] == ["closed-book", "rag"]
    assert report["run"]["demo"] == {"profile": "offline", "stand_ins": True,
                                     "encoder": "sentence-transformers/all-MiniLM-L6-v2",
                                     "llm": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert report["run"]["corpus"]["documents"] == N_PASSAGES
    assert (folder / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rag | 2 |" in (folder / "report.md").read_text()


def test_second_run_reuses_index_and_journal(demo):
    text = demo.second
    assert f"{N_PASSAGES} records; 0 encoded now, {N_PASSAGES} unchanged" in text
    assert llm_calls(text) == (0, 0, 15, 0)  # everything came from the journal
    assert results_part(text) == results_part(demo.first)


def test_summary_json_tells_what_each_run_did(demo):
    """``<out>/summary.json``: what the newcomer check reads to prove a rerun encodes nothing and calls no LLM."""
    first, second = demo.summaries
    assert first["index"] == {"collection": "openstax-minilm", "passages_read": N_PASSAGES, "count": N_PASSAGES,
                              "encoded": N_PASSAGES, "unchanged": 0}
    assert (first["showcase"], first["eval_questions"]) == (3, 2)
    assert first["llm_calls"] == {"generate": 10, "score": 15} and first["journal"] == {"entries": 15, "added": 15}
    assert second["index"]["encoded"] == 0 and second["index"]["unchanged"] == N_PASSAGES
    assert second["llm_calls"] == {"generate": 0, "score": 0} and second["journal"]["added"] == 0
    assert set(first["seconds"]) >= {"load encoder", "index", "load LLM", "showcase", "eval"}


def test_passages_limit_spreads_over_the_books(tmp_path):
    """``--passages N`` (and ``--smoke``) takes the first passages of each book, at most N."""
    from reasonir_rag.demo.run import _passages
    from reasonir_rag.index.loaders import LoadReport

    for book, n in (("a", 4), ("b", 1), ("c", 6)):
        rows = [json.dumps({"id": f"{book}{i}", "text": f"passage {i} of {book}"}) for i in range(n)]
        (tmp_path / f"{book}.jsonl").write_text("\n".join(rows) + "\n")
    files = sorted(tmp_path.glob("*.jsonl"))
    assert [d.id for d in _passages(files, 7, LoadReport())] == ["a0", "a1", "a2", "b0", "c0", "c1"]
    assert len(_passages(files, None, LoadReport())) == 11
    with pytest.raises(ValueError, match="passages must be >= 1, got 0"):
        resolve_config("offline", env={}, passages=0)


def test_killed_run_resumes_with_the_missing_calls(demo):
    journal = demo.out / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(journal)) as db, db:  # as if killed before the last read
        keys = [k for (k,) in db.execute("SELECT key FROM entries WHERE kind = 'reader' ORDER BY rowid")]
        assert len(keys) == 4
        db.execute("DELETE FROM entries WHERE key = ?", (keys[-1],))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REASONIR_OFFLINE_CACHE", str(demo.cache))
        text = run_cli(demo.args)
    assert llm_calls(text) == (1, 0, 15, 1)
    assert "| rag | 2 |" in text


def test_profiles_resolve_to_the_paper_models_or_overrides():
    paper = resolve_config("reasonir", env={})
    assert (paper.encoder_label, paper.llm, paper.llm_url, paper.stand_ins) == (PAPER_ENCODER, PAPER_LLM, None, False)
    assert paper.collection == "openstax-reasonir-8b" and "rag+rerank" in paper.conditions
    served = resolve_config("reasonir", env={"REASONIR_DEMO_LLM_URL": "http://gpu-box:8000/v1"}, candidates=20)
    assert (served.llm, served.llm_url, served.candidates) == (PAPER_LLM, "http://gpu-box:8000/v1", 20)
    other = resolve_config("reasonir", env={"REASONIR_DEMO_ENCODER": "/models/my-encoder"})
    assert other.collection == collection_name("/models/my-encoder") != paper.collection
    assert re.fullmatch(r"openstax-my-encoder-[0-9a-f]{8}", other.collection)
    with pytest.raises(ValueError, match="unknown demo profile 'gpu'"):
        resolve_config("gpu", env={})
    with pytest.raises(ValueError, match="candidates \\(2\\) must be >= k \\(3\\)"):
        resolve_config("reasonir", env={}, candidates=2)


def test_bad_options_exit_2(tmp_path, capsys):
    assert main(["demo", "--llm-url", "http://127.0.0.1:9/v1", "--data", str(tmp_path)]) == 2
    assert "--llm-url needs --llm" in capsys.readouterr().err
    assert main(["demo", "--profile", "reasonir", "--data", str(tmp_path), "--mmlu", str(tmp_path)]) == 2
    assert "no '<subject>_test.csv' files under" in capsys.readouterr().err
    assert main(["demo", "--candidates", "2", "--data", str(tmp_path)]) == 2
    assert "candidates (2) must be >= k (3)" in capsys.readouterr().err


def test_reasonir_profile_wiring(demo_corpus, repo_data, tiny_reasonir_dir, vllm_server, tmp_path, monkeypatch):
    """The `reasonir` profile's code path with named stand-ins, since no model hub is reachable here: the tiny
    random ReasonIR-shaped encoder (real Llama-3.1 tokenizer) stands in for ReasonIR-8B (given through
    REASONIR_DEMO_ENCODER) and SmolLM2-135M served by a real vLLM on 127.0.0.1 stands in for Qwen2.5-7B-Instruct
    behind --llm-url. Sizes are cut so that it runs in seconds; the model names are all that differ."""
    monkeypatch.setenv("REASONIR_DEMO_ENCODER", str(tiny_reasonir_dir))
    text = run_cli(["demo", "--profile", "reasonir", "--llm", vllm_server.model, "--llm-url", vllm_server.base_url,
                    "--device", "cpu", "--data", str(demo_corpus), "--mmlu", str(repo_data / "mmlu"),
                    "--out", str(tmp_path), "--examples", "1", "--limit", "2", "--candidates", "4",
                    "--rewrite-tokens", "16", "--reader-tokens", "16", "--no-progress"])
    assert text.startswith("reasonir-rag demo, profile reasonir")
    assert f"encoder:    {tiny_reasonir_dir}\n" in text and "stand-in" not in text and "near chance" not in text
    assert f"LLM:        {vllm_server.model} at {vllm_server.base_url}\n            as rewriter, reranker" in text
    assert f"collection {collection_name(str(tiny_reasonir_dir))} in" in text
    assert "top 3 after reranking 4 candidates:" in text and text.count("\nQ") == 1
    for condition in ("closed-book", "rag", "rag+rerank", "rag+rewrite"):
        assert f"| {condition} | 2 |" in text
    generated, scored, _, _ = llm_calls(text)
    assert generated > 0 and scored == 4 + 2 * 4  # showcase rerank + eval rerank of 4 candidates each

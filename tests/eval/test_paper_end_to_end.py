"""``--protocol paper`` end to end on a real reader (SmolLM2): a collection built as ReasonIR's datastore was
(no document prefix, 512 tokens), then ``eval mmlu``; the journal shows what was searched and what the reader was
sent, and the report what was scored, each by ReasonIR's rules."""

from __future__ import annotations

import json
import logging
import sqlite3
from itertools import islice

import pytest

from reasonir_rag.cli.main import main
from reasonir_rag.eval.extract import extract_reasonir_mmlu
from reasonir_rag.sample_data import openstax_records

pytestmark = pytest.mark.llm


def _journal(path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with sqlite3.connect(path) as db:
        for kind, meta, value in db.execute("SELECT kind, meta, value FROM entries ORDER BY created"):
            out.setdefault(kind, []).append({"meta": json.loads(meta), "value": json.loads(value)})
    return out


def test_paper_protocol_end_to_end_on_smollm2(tmp_path, tiny_reasonir_dir, smollm2_dir, repo_data, caplog,
                                           capsys):
    passages = tmp_path / "passages.jsonl"
    rows = islice(openstax_records("microbiology", repo_data / "openstax"), 0, 600, 20)
    passages.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    store = ["--collection", "datastore", "--path", str(tmp_path / "chroma"), "--device", "cpu"]
    assert main(["index", str(passages), *store, "--encoder", str(tiny_reasonir_dir), "--document-prefix", "",
                 "--max-length", "512", "--no-progress"]) == 0
    out = tmp_path / "out"
    command = ["-v", "eval", "mmlu", *store, "--data", str(repo_data / "mmlu"), "--subjects", "college_biology",
               "--sample", "2", "--reader", f"hf:{smollm2_dir}", "--conditions", "closed-book,rag", "--max-tokens",
               "16", "--concurrency", "1", "--protocol", "paper", "--out", str(out), "--no-progress"]
    with caplog.at_level(logging.INFO):
        code = main(command)
    assert code == 0
    assert "differs from ReasonIR's RAG runs" not in caplog.text  # the store was built as ReasonIR's was
    assert "stays float32 on CPU" in caplog.text

    report = json.loads((out / "report.json").read_text())
    assert report["run"]["protocol"]["name"] == "paper"
    assert report["run"]["protocol"]["retrieval_max_length"] == 512
    journal = _journal(out / "journal.sqlite")
    searched = [e["meta"] for e in journal["retrieval"]]
    assert searched, "the RAG condition searched the store"
    for meta in searched:  # lm-eval's prompt with the choices, GritLM's empty instruction
        assert meta["query"].startswith("The following are multiple choice questions (with answers) about "
                                        "college biology.\n\n")
        assert meta["query"].endswith("\nAnswer:") and "\nA. " in meta["query"] and "\nD. " in meta["query"]
        assert meta["instruction"] == ""
    prompts = [e["meta"]["messages"] for e in journal["reader"]]
    rag = [m for m in prompts if m[-1]["content"].startswith("Related background:\n")]
    assert len(rag) == 2 and len(prompts) == 4
    for messages in prompts:
        assert messages[0] == {"role": "system", "content": "You are a helpful assistent."}
        assert "letter choice.\n\n\n\nQuestion:\n" in messages[-1]["content"]
        assert messages[-1]["content"].endswith("Answer: Let's think step by step.")
    # scored by ReasonIR's extraction: its guesses are what the report counts as unextracted, per condition
    guesses = {"closed-book": 0, "rag": 0}
    for entry in journal["reader"]:
        rag_prompt = entry["meta"]["messages"][-1]["content"].startswith("Related background:\n")
        found = extract_reasonir_mmlu(entry["value"]["text"])
        guesses["rag" if rag_prompt else "closed-book"] += found.method == "guess"
    assert {c["name"]: c["unextracted"] for c in report["conditions"]} == guesses
    assert report["run"]["calls"] == {"retrieval": {"new": 2, "journaled": 0}, "reader": {"new": 4, "journaled": 0}}
    assert report["run"]["reader_generation"]["max_tokens"] == 16

    capsys.readouterr()
    assert main(command) == 0  # a rerun reads every call from the journal and says so
    calls = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("calls: "))
    assert sorted(calls.removeprefix("calls: ").split(", ")) == ["reader 0 new / 4 from the journal",
                                                                  "retrieval 0 new / 2 from the journal"]

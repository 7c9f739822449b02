"""`reasonir-rag eval mmlu` killed mid-run (a real SIGKILL) resumes without repeating or losing a call."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from itertools import islice

import pytest

from reasonir_rag.sample_data import openstax_records


def _reader_entries(journal) -> dict[str, float]:
    if not journal.exists():
        return {}
    try:
        with sqlite3.connect(journal, timeout=5) as db:
            return dict(db.execute("SELECT key, created FROM entries WHERE kind = 'reader'"))
    except sqlite3.OperationalError:  # the table is not there yet
        return {}


@pytest.fixture(scope="module")
def small_collection(tmp_path_factory, minilm_encoder, repo_data):
    from reasonir_rag.index.store import ChromaStore
    from reasonir_rag.types import Document

    path = tmp_path_factory.mktemp("chroma")
    docs = []
    for rec in islice(openstax_records("microbiology", repo_data / "openstax"), 0, 2000, 40):
        docs.append(Document(rec["id"], rec["text"], {"book": rec["book"]}))
    ChromaStore("micro", encoder=minilm_encoder, path=path).add(docs)
    return path


def test_killed_eval_resumes_without_repeating_or_losing_calls(tmp_path, small_collection, smollm2_dir,
                                                              repo_data):
    out, journal = tmp_path / "out", tmp_path / "out" / "journal.sqlite"
    cmd = [sys.executable, "-m", "reasonir_rag", "eval", "mmlu", "--collection", "micro",
           "--path", str(small_collection), "--encoder", "minilm", "--device", "cpu",
           "--data", str(repo_data / "mmlu"), "--subjects", "college_biology", "--sample", "4",
           "--reader", f"hf:{smollm2_dir}", "--conditions", "closed-book,rag", "--max-tokens", "24",
           "--concurrency", "1", "--out", str(out), "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(_reader_entries(journal)) < 2:
        assert first.poll() is None, f"the run ended before it could be killed: {first.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no reader answer was recorded in time"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = _reader_entries(journal)
    assert 2 <= len(before) < 8, "the kill should land mid-run"

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    after = _reader_entries(journal)
    # nothing repeated: every answer recorded before the kill is still the same row, untouched
    assert {k: after[k] for k in before} == before
    # nothing lost: 4 questions x 2 conditions, every one answered exactly once, and the report counts them all
    assert len(after) == 8
    report = json.loads((out / "report.json").read_text())
    assert [(c["name"], c["n"]) for c in report["conditions"]] == [("closed-book", 4), ("rag", 4)]
    assert "| closed-book |" in second.stdout or "closed-book" in second.stdout


def test_an_unreachable_reader_is_one_line_and_exit_2(tmp_path, small_collection, repo_data, capsys, monkeypatch):
    """An ``LLMError`` (a ReasonIRError) from ``eval`` is printed as one line with exit code 2, no traceback."""
    from reasonir_rag.cli.main import main
    from reasonir_rag.llm.openai_backend import OpenAICompatibleLLM
    from tests.servers import free_port

    # every retry still happens (the error comes after the last one), without the 0.5+1+2+4 s of backoff sleeps
    monkeypatch.setitem(OpenAICompatibleLLM.__init__.__kwdefaults__, "backoff", 0.0)

    code = main(["eval", "mmlu", "--collection", "micro", "--path", str(small_collection), "--encoder", "minilm",
                 "--device", "cpu", "--data", str(repo_data / "mmlu"), "--subjects", "college_biology",
                 "--sample", "1", "--reader", "openai:nobody", "--base-url", f"http://127.0.0.1:{free_port()}/v1",
                 "--conditions", "closed-book", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("reasonir-rag eval: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err

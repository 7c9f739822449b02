"""``rewrite``, ``rerank`` and ``eval`` when the LLM server fails: one line on stderr and exit 2 when nothing
usable came back (unreachable server, refused key), exit 1 with a counted warning when part of the output is a
fallback. The CLI runs as a subprocess, as a user runs it, against a loopback fault server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.llm.helpers import completion_body, free_port
from tests.servers import FaultServer, Reply

REPO = Path(__file__).resolve().parents[2]
DOCS = "\n".join(json.dumps({"id": f"d{i}", "text": t, "score": 0.5}) for i, t in
                 enumerate(["Water boils at 100 C.", "Paris is in France."]))
REFUSED = Reply(401, {"error": {"message": "invalid api key"}})


def _chat(text: str) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "sk-test-CLI-5e1"}
    return subprocess.run([sys.executable, "-m", "reasonir_rag", *args], input=stdin, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _one_error_line(run: subprocess.CompletedProcess, command: str) -> str:
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reasonir-rag {command}: error: "), run.stderr
    assert run.stdout == "" and "sk-test-CLI" not in run.stderr
    return lines[0]


def test_an_unreachable_server_is_one_line_and_exit_2_for_rewrite_rerank_and_eval(tmp_path, repo_data):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    line = _one_error_line(_cli("rewrite", "why is the sky blue?", "--llm", "openai:m", "--base-url", dead), "rewrite")
    assert "no question could be rewritten (1 of 1)" in line and "APIConnectionError" in line and dead in line
    line = _one_error_line(_cli("rerank", "--query", "boiling", "--llm", "openai:m", "--base-url", dead,
                                stdin=DOCS), "rerank")
    assert "after 2 attempts: APIConnectionError" in line and dead in line  # refused: one retry, not four
    line = _one_error_line(_cli("eval", "mmlu", "--reader", "openai:m", "--base-url", dead, "--data",
                                str(repo_data / "mmlu"), "--subjects", "astronomy", "--sample", "2",
                                "--conditions", "closed-book", "--collection", "none", "--path",
                                str(tmp_path / "chroma"), "--out", str(tmp_path / "out"), "--no-progress"), "eval")
    assert "APIConnectionError" in line and dead in line


def test_a_refused_key_is_exit_2_not_a_file_of_zero_scores_or_unchanged_questions():
    with FaultServer([REFUSED]) as server:
        rerank = _cli("rerank", "--query", "boiling", "--llm", "openai:m", "--base-url", server.base_url, stdin=DOCS)
        rewrite = _cli("rewrite", "q one", "q two", "--llm", "openai:m", "--base-url", server.base_url)
    rerank_line = [line for line in rerank.stderr.splitlines() if line.startswith("reasonir-rag rerank: error: ")]
    assert rerank.returncode == 2 and rerank.stdout == "" and len(rerank_line) == 1
    assert "no document could be scored (2 of 2)" in rerank_line[0] and "HTTP 401" in rerank_line[0]
    assert "no question could be rewritten (2 of 2)" in _one_error_line(rewrite, "rewrite")


def test_partial_fallbacks_are_written_counted_and_exit_1():
    with FaultServer([Reply(200, completion_body("4", {"4": -0.1})), REFUSED]) as server:
        rerank = _cli("rerank", "--query", "boiling", "--llm", "openai:m", "--base-url", server.base_url, stdin=DOCS)
    rows = [json.loads(line) for line in rerank.stdout.splitlines()]
    assert rerank.returncode == 1 and len(rows) == 2
    assert sum("rerank_error" in r["metadata"] for r in rows) == 1
    assert "1 of 2 documents could not be scored" in rerank.stderr
    with FaultServer([Reply(200, _chat("A long rewrite.")), REFUSED]) as server:
        rewrite = _cli("rewrite", "q one", "q two", "--llm", "openai:m", "--base-url", server.base_url, "--json")
    rows = [json.loads(line) for line in rewrite.stdout.splitlines()]
    assert rewrite.returncode == 1 and len(rows) == 2 and sum(r["error"] is not None for r in rows) == 1
    assert "1 of 2 questions could not be rewritten" in rewrite.stderr
    assert rewrite.stderr.count("\n") == 1  # the per-question warning is summed up in that one line (-v: each)

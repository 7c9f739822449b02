"""A killed `reasonir-rag synthesize` resumes without sending any answered call again.

The CLI runs as a subprocess against a counting OpenAI-compatible server (scripted replies: the stand-in for a
GPU-sized LLM). The server holds the third request; the test waits until the journal holds the two answered
ones, kills the process (SIGKILL), then reruns the same command to the end and compares the requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reasonir_rag.eval.journal import Journal
from tests.synth.scripted_server import CountingServer

REPO = Path(__file__).resolve().parents[2]


def _command(corpus, classifier, out, base_url):
    return [sys.executable, "-m", "reasonir_rag", "synthesize", str(corpus), "--llm", "openai:scripted",
            "--base-url", base_url, "--out", str(out), "--task", "biology", "--seeds", "5", "--classifier",
            str(classifier), "--chunk-tokens", "256", "--concurrency", "1", "--no-progress"]


def _env():
    return {**os.environ, "OPENAI_API_KEY": "unused", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def _journal_size(path: Path) -> int:
    if not path.exists():
        return 0
    with Journal(path) as journal:
        return len(journal)


def test_killed_run_resumes_without_repeating_an_answered_call(openstax_corpus, standin_classifier, tmp_path):
    out = tmp_path / "set"
    with CountingServer(hold_after=2) as server:
        proc = subprocess.Popen(_command(openstax_corpus, standin_classifier, out, server.base_url), env=_env(),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 600
        while _journal_size(out / "journal.sqlite") < 2:  # the two answered calls are committed
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first run never recorded two calls"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        first = list(server.answered)
        assert len(first) == 2 and _journal_size(out / "journal.sqlite") == 2
        server.hold_after = None
        server.release.set()
        done = subprocess.run(_command(openstax_corpus, standin_classifier, out, server.base_url), env=_env(),
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        second = server.answered[len(first):]
    assert not set(first) & set(second), "an answered call was sent again"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["llm_calls"] == {"made": len(second), "from_journal": 2, "failed": 0}
    assert _journal_size(out / "journal.sqlite") == len(first) + len(second) == 5 + 1  # 5 seeds, 1 retry

    fresh = tmp_path / "fresh"  # the same command uninterrupted writes the same set
    with CountingServer() as server:
        again = subprocess.run(_command(openstax_corpus, standin_classifier, fresh, server.base_url), env=_env(),
                               cwd=REPO, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
    for name in ("examples/biology.jsonl", "documents/biology.jsonl", "rejected.jsonl"):
        assert (out / name).read_text() == (fresh / name).read_text()

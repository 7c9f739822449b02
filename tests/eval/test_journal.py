"""The resumable journal: get/put, thread safety, and a real SIGKILL mid-run followed by a resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reasonir_rag.errors import LLMError
from reasonir_rag.eval.journal import Journal, fill, journal_key

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("journal_worker.py")


def test_get_put_and_keys(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        key = journal_key("reader", condition="closed-book", question_id="q1", model="m", prompt_hash="h")
        assert key == Journal.key("reader", prompt_hash="h", model="m", question_id="q1", condition="closed-book")
        assert key != journal_key("reader", condition="rag", question_id="q1", model="m", prompt_hash="h")
        assert journal.get(key) is None and key not in journal and len(journal) == 0
        journal.put(key, {"text": "the answer is (B)", "tokens": 12}, kind="reader", meta={"q": "q1"})
        assert journal.get(key) == {"text": "the answer is (B)", "tokens": 12} and key in journal
        assert not journal.add(key, "other") and journal.get(key)["tokens"] == 12  # add keeps the first
        journal.put("k-none", None)
        assert journal.get("k-none", "default") is None  # a stored None is a value, not a miss
        assert journal.get_many([key, "absent"]) == {key: {"text": "the answer is (B)", "tokens": 12}}
        assert [(k, m) for k, m, _ in journal.items(kind="reader")] == [(key, {"q": "q1"})]
        with pytest.raises(TypeError, match="JSON-serialisable"):
            journal.put("bad", object())
    with Journal(tmp_path / "j.sqlite") as reopened:  # persisted
        assert reopened.get(key)["tokens"] == 12 and len(reopened) == 2
        assert reopened._db.read("PRAGMA journal_mode")[0][0] == "wal"


def test_get_or_compute_computes_each_key_once_across_threads(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def compute(i: int) -> int:
        with lock:
            calls[i] += 1
        time.sleep(0.01)
        return i * i

    # 8 threads ask for 20 keys, each key 4 times, all at once
    jobs = [i % 20 for i in range(80)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: journal.get_or_compute(f"k{i}", lambda: compute(i)), jobs))
    assert results == [i * i for i in jobs]
    assert calls == Counter({i: 1 for i in range(20)})
    assert len(journal) == 20


def test_a_failed_call_is_not_recorded_and_is_retried(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")

    def boom():
        raise RuntimeError("server 503")

    with pytest.raises(RuntimeError, match="503"):
        journal.get_or_compute("k", boom)
    assert "k" not in journal
    assert journal.get_or_compute("k", lambda: "ok") == "ok"


def _calls(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _recorded(db: Path) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {json.loads(m)["item"] for (m,) in conn.execute("SELECT meta FROM entries")}
    finally:
        conn.close()


def test_sigkill_mid_run_then_resume_repeats_and_loses_nothing(tmp_path):
    """A real subprocess records N results with 4 threads, is SIGKILLed mid-way, then rerun to completion.

    The second run must call exactly the items that had no committed result (those in flight at the kill
    included), never one that was recorded, and end with all N results.
    """
    n, db = 150, tmp_path / "run.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(WORKER), str(db)]
    first = subprocess.Popen([*args, str(tmp_path / "calls-1.log"), str(n), "4", "0.02"], env=env,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    recorded_at_kill: set[int] = set()
    while time.monotonic() < deadline and first.poll() is None:
        if db.exists():
            try:
                recorded_at_kill = _recorded(db)
            except sqlite3.OperationalError:  # the table is being created
                recorded_at_kill = set()
            if len(recorded_at_kill) >= n // 3:
                break
        time.sleep(0.005)
    assert first.poll() is None, "the worker finished before it could be killed: " + first.stderr.read().decode()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    recorded_at_kill = _recorded(db)  # what actually committed before the kill
    calls_1 = _calls(tmp_path / "calls-1.log")
    assert n // 3 <= len(recorded_at_kill) < n
    assert recorded_at_kill <= set(calls_1) and len(calls_1) == len(set(calls_1))

    second = subprocess.run([*args, str(tmp_path / "calls-2.log"), str(n), "4", "0.0"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    calls_2 = _calls(tmp_path / "calls-2.log")
    assert len(calls_2) == len(set(calls_2))  # nothing called twice in the rerun
    assert set(calls_2) == set(range(n)) - recorded_at_kill  # exactly the missing ones: no repeat, no loss
    with Journal(db) as journal:
        values = {m["item"]: v for _, m, v in journal.items(kind="reader")}
    assert sorted(values) == list(range(n))
    assert all(v == {"item": i, "answer": f"the answer is ({'ABCD'[i % 4]})"} for i, v in values.items())


def test_fill_commits_each_batch_and_stops_after_a_transient_failure(tmp_path):
    """The one batch-then-save loop (the evaluator's stages, the synthesizer's calls, the scaling rewrites)."""
    with Journal(tmp_path / "j.sqlite") as journal:
        keys = [journal_key("t", i=i) for i in range(7)]
        journal.put(keys[0], {"v": 0}, kind="t")
        seen: list[list[int]] = []
        opened: list[int] = []

        def compute(batch):
            seen.append(batch)
            assert all(keys[i] in journal for i in range(1, batch[0]) if i != 2)  # earlier batches: committed
            return [ValueError("refused") if i == 2 else LLMError("down", transient=True) if i == 5 else {"v": i}
                    for i in batch]

        class Bar:
            def __init__(self, total):
                opened.append(total)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def update(self, n):
                opened.append(-n)

        done = fill(journal, keys, list(range(7)), compute, batch=2, kind="t", progress=Bar)
        assert seen == [[1, 2], [3, 4], [5, 6]]  # stopped after the batch with the transient failure
        assert opened == [6, -2, -2, -2]
        assert done.journaled == 1 and done.new == 4 and done.unavailable
        assert done.failures == ["ValueError: refused", "LLMError: down"]
        assert sorted(v["v"] for v in done.values.values()) == [0, 1, 3, 4, 6]
        assert keys[2] not in journal and keys[5] not in journal  # failures are not recorded: a rerun retries
        again = fill(journal, keys, list(range(7)), lambda b: [{"v": i} for i in b], batch=10)
        assert again.journaled == 5 and again.new == 2 and not again.failures

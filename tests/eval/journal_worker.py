"""A stand-in evaluation run for the resume test: N "LLM calls" through a Journal, in worker threads.

Each call appends its item to a call log (one write per call, flushed, so it survives SIGKILL) and sleeps
like a slow LLM; the result is recorded through Journal.get_or_compute. Run as a script:
``python journal_worker.py DB CALL_LOG N WORKERS SLEEP_S``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from reasonir_rag.eval.journal import Journal


def main() -> None:
    db, call_log, n, workers, sleep_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
        float(sys.argv[5])
    journal = Journal(db)
    log_lock = threading.Lock()
    fd = os.open(call_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def call(i: int) -> dict:
        with log_lock:
            os.write(fd, f"{i}\n".encode())  # unbuffered: on disk (page cache) before the result exists
        time.sleep(sleep_s)
        return {"item": i, "answer": f"the answer is ({'ABCD'[i % 4]})"}

    def one(i: int) -> None:
        key = Journal.key("reader", condition="rag", question_id=f"q{i}", model="stand-in", prompt_hash="p")
        value = journal.get_or_compute(key, lambda: call(i), kind="reader", meta={"item": i})
        assert value["item"] == i

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(n)))
    os.close(fd)
    journal.close()


if __name__ == "__main__":
    main()

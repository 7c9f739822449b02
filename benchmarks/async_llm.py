"""The async LLM path against the old one: many questions rewritten at once on an event loop, one run.

A stand-in OpenAI-compatible server (a separate process on 127.0.0.1, every answer after ``--delay`` seconds, as a
busy LLM server would) answers ``QueryRewriter``'s chat completions. Two ways of running ``--questions`` rewrites
concurrently on one event loop, the same rewriter and client (``max_concurrency=--concurrency``):

- ``native``: ``asyncio.gather`` of ``rewriter.arewrite_queries([q])`` (``AsyncOpenAI``, no thread per call);
- ``to_thread``: ``asyncio.gather`` of ``asyncio.to_thread(rewriter.rewrite_queries, [q])``, what the framework
  packages' async paths did before (the default executor: ``min(32, CPUs + 4)`` threads).

Prints, for each, the median wall time of ``--repeats`` rounds, the most threads alive during a round, and the
ratio of the wall times. The rewrites of both ways are checked to be equal.

    python benchmarks/async_llm.py [--questions 64] [--delay 0.2] [--concurrency 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.rewriter import QueryRewriter

logger = logging.getLogger("benchmarks.async_llm")


def serve(port: int, delay: float) -> None:
    """A chat-completions endpoint that answers every request after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(delay)
            question = body["messages"][-1]["content"][:40]
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": f"rewrite of {question}"}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 256
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the stand-in server did not start")


async def one_round(rewriter: QueryRewriter, questions: list[str], native: bool) -> tuple[float, int, list[str]]:
    peak, running = threading.active_count(), True

    async def watch() -> None:
        nonlocal peak
        while running:
            peak = max(peak, threading.active_count())
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    start = time.perf_counter()
    if native:
        results = await asyncio.gather(*(rewriter.arewrite_queries([q]) for q in questions))
    else:
        results = await asyncio.gather(*(asyncio.to_thread(rewriter.rewrite_queries, [q]) for q in questions))
    wall = time.perf_counter() - start
    running = False
    await watcher
    return wall, peak, [r[0].text for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port, args.delay), daemon=True)
    server.start()
    try:
        wait_for(port)
        llm = OpenAICompatibleLLM("stand-in", base_url=f"http://127.0.0.1:{port}/v1", api_key="unused",
                                  max_concurrency=args.concurrency)
        rewriter = QueryRewriter(llm, max_tokens=16)
        questions = [f"Question {i}: why does the {i}th experiment give a different result?"
                     for i in range(args.questions)]
        rows: dict[str, tuple[float, int]] = {}
        answers: dict[str, list[str]] = {}
        for name, native in (("native", True), ("to_thread", False)):
            rounds = [asyncio.run(one_round(rewriter, questions, native)) for _ in range(args.repeats)]
            rows[name] = (statistics.median(r[0] for r in rounds), max(r[1] for r in rounds))
            answers[name] = rounds[0][2]
        if answers["native"] != answers["to_thread"]:
            raise SystemExit("the two paths gave different rewrites")
        logger.info("%d rewrites at once, server delay %.2f s, max_concurrency %d, median of %d rounds",
                    args.questions, args.delay, args.concurrency, args.repeats)
        for name, (wall, peak) in rows.items():
            logger.info("%-9s  wall %.2f s  most threads alive %d", name, wall, peak)
        logger.info("native is %.1fx faster than to_thread", rows["to_thread"][0] / rows["native"][0])
    finally:
        server.terminate()


if __name__ == "__main__":
    main()

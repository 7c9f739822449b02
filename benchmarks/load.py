"""Search throughput under load: sequential vs 32 threads vs 32 asyncio tasks, same store and queries, one run.

MiniLM (the offline ``minilm`` preset) over real OpenStax passages in an embedded Chroma (``--server`` adds a
real ``chroma run`` on 127.0.0.1 reached through HttpClient). Each mode runs the same queries through
``ChromaStore.search`` (asyncio: ``aencode_queries`` then ``search_by_vector`` in a worker thread, as the
LangChain/LlamaIndex ``ainvoke``/``aretrieve`` do); every answer is checked against the sequential one. Prints
the median queries/s of ``--repeats`` rounds and the ratios to sequential.

    python benchmarks/load.py [--docs 300] [--queries 32] [--repeats 3] [--threads 1] [--server]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import torch

from reasonir_rag import ReasonIREncoder
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.sample_data import openstax_dir, openstax_records
from reasonir_rag.types import Document

logger = logging.getLogger("bench.load")
DATA = openstax_dir()  # the shipped OpenStax books, or $REASONIR_DATA/openstax
BOOKS = ("chemistry-bundle", "microbiology", "university-physics-bundle", "anatomy-physiology")


def load_corpus(folder: Path, n_docs: int) -> list[Document]:
    """``n_docs`` passages spread over the four OpenStax books (every 29th line of each)."""
    per_book = -(-n_docs // len(BOOKS))
    docs: list[Document] = []
    for book in BOOKS:
        for rec in islice(openstax_records(book, folder), 0, per_book * 29, 29):
            docs.append(Document(rec["id"], rec["text"], {"book": rec["book"]}))
    return docs[:n_docs]


def start_chroma(folder: Path) -> tuple[subprocess.Popen, int]:
    """A real ``chroma run`` on 127.0.0.1 at a free port (stopped by its PID at the end)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            opener.open(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).read()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("chroma run did not answer in 90 s")


def ids(results: list) -> list[list[str]]:
    return [[h.id for h in hits] for hits in results]


def sequential(store: ChromaStore, queries: list[str], k: int) -> list:
    return [store.search(q, k=k) for q in queries]


def threaded(store: ChromaStore, queries: list[str], k: int) -> list:
    with ThreadPoolExecutor(len(queries)) as pool:
        return list(pool.map(lambda q: store.search(q, k=k), queries))


def with_asyncio(store: ChromaStore, queries: list[str], k: int) -> list:
    async def one(q: str) -> list:
        vector = await store.encoder.aencode_queries([q])
        return await asyncio.to_thread(store.search_by_vector, vector[0], k)

    async def run() -> list:
        return await asyncio.gather(*(one(q) for q in queries))

    return asyncio.run(run())


def measure(store: ChromaStore, queries: list[str], k: int, repeats: int) -> dict[str, float]:
    """Median queries/s of each mode; raises if any concurrent answer differs from the sequential one."""
    modes: dict[str, Callable] = {"sequential": sequential, f"{len(queries)} threads": threaded,
                                  f"asyncio gather of {len(queries)}": with_asyncio}
    expected = ids(sequential(store, queries, k))  # warm-up and the reference answers
    rates: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(repeats):
        for name, fn in modes.items():
            start = time.perf_counter()
            got = fn(store, queries, k)
            rates[name].append(len(queries) / (time.perf_counter() - start))
            if ids(got) != expected:
                raise AssertionError(f"{name}: answers differ from the sequential ones")
    return {name: statistics.median(r) for name, r in rates.items()}


def report(where: str, rates: dict[str, float]) -> None:
    base = rates["sequential"]
    print(f"\n{where}")
    print(f"{'mode':<28}{'queries/s':>12}{'vs sequential':>16}")
    for name, rate in rates.items():
        print(f"{name:<28}{rate:>12.1f}{rate / base:>15.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--server", action="store_true", help="also measure through a real `chroma run`")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the OpenStax JSONL files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    docs = load_corpus(args.data, args.docs)
    queries = [" ".join(d.text.split()[:12]) for d in docs[3 :: max(1, len(docs) // args.queries)]][: args.queries]
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "emb-cache")  # the corpus is encoded once for both stores; queries never cached
        ingest = ReasonIREncoder.from_pretrained(preset="minilm", device="cpu", cache=cache)
        encoder = ReasonIREncoder.from_pretrained(preset="minilm", device="cpu")
        ChromaStore("bench-load", encoder=ingest, path=Path(tmp) / "chroma").add(docs)
        store = ChromaStore("bench-load", encoder=encoder, path=Path(tmp) / "chroma", create=False)
        print(f"MiniLM, {len(docs)} OpenStax passages, {len(queries)} queries, top-{args.k}, "
              f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
        report("embedded Chroma (PersistentClient)", measure(store, queries, args.k, args.repeats))
        if args.server:
            proc, port = start_chroma(Path(tmp) / "server")
            try:
                ChromaStore("bench-load", encoder=ingest, host="127.0.0.1", port=port).add(docs)
                remote = ChromaStore("bench-load", encoder=encoder, host="127.0.0.1", port=port, create=False)
                report(f"Chroma server (chroma run on 127.0.0.1:{port}, HttpClient)",
                       measure(remote, queries, args.k, args.repeats))
            finally:
                proc.terminate()
                proc.wait(timeout=15)


if __name__ == "__main__":
    main()

"""Scale figures on CPU: Chroma ingest and search at 4096 dims, and how far served embeddings are from ReasonIR.

``store``: an embedded Chroma (PersistentClient, cosine HNSW, as ChromaStore opens it) fed random unit
vectors of ``--dim`` (4096: ReasonIR-8B's width):
- ingest vectors/s for several ``add`` batch sizes, against the naive way (one ``add`` call per vector) on the
  same machine in the same run, and through ``ChromaStore.add`` (id/hash check before each write) vs raw
  ``collection.add`` at the store's default batch;
- then ``--n`` vectors (100k) at the store's default batch, and top-10 search latency p50/p99 at that size,
  one query per call and 32 queries per call.
``served-gap``: the tiny ReasonIR-shaped model (hidden 128) served by vLLM for CPU in each way of
``VLLM_SERVE_ARGS`` (and vLLM's former ``GritLM`` architecture), each compared with the faithful local encoder
on OpenStax passages and MMLU questions: cosine min / median, document and query side.

Encode and rerank throughput: ``benchmarks/encode.py`` and ``benchmarks/rerank.py``.

    nice -n 10 python benchmarks/scale.py store [--n 100000] [--threads 1]
    python benchmarks/scale.py served-gap
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from reasonir_rag.sample_data import data_root, openstax_records

logger = logging.getLogger("bench.scale")
REPO = Path(__file__).resolve().parents[1]
DATA = data_root()  # the sample data the repository ships (data/), or $REASONIR_DATA
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


# ---------------------------------------------------------------------------------------------- Chroma
def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def open_collection(client: Any, name: str, threads: int | None) -> Any:
    hnsw: dict[str, Any] = {"space": "cosine"}
    if threads:
        hnsw["num_threads"] = threads
    return client.create_collection(name, embedding_function=None, configuration={"hnsw": hnsw})


def ingest(col: Any, n: int, dim: int, batch: int, rng: np.random.Generator, start: int = 0) -> float:
    """Vectors/s of ``collection.add`` in batches of ``batch`` (vector generation is not timed)."""
    spent = 0.0
    for lo in range(start, start + n, batch):
        hi = min(lo + batch, start + n)
        vectors = unit_vectors(rng, hi - lo, dim)
        ids = [f"v{i}" for i in range(lo, hi)]
        docs = [f"document {i}" for i in range(lo, hi)]
        t = time.perf_counter()
        col.add(ids=ids, embeddings=vectors, documents=docs)
        spent += time.perf_counter() - t
    return n / spent


class PrecomputedEncoder:
    """ChromaStore's encoder surface over vectors made beforehand (the bulk writer's way in)."""

    def __init__(self, dim: int):
        self.dim = dim
        self.fingerprint = {"model": "random", "weights": "-", "dim": dim, "query_template": "",
                            "document_prefix": "", "pooling": "-"}
        self.vectors: dict[str, np.ndarray] = {}

    def encode_documents(self, texts: list[str], **_: Any) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def store_ingest(path: str, name: str, n: int, dim: int, batch: int, rng: np.random.Generator) -> float:
    from reasonir_rag.index.store import ChromaStore

    encoder = PrecomputedEncoder(dim)
    store = ChromaStore(name, encoder=encoder, path=path, records_per_call=batch, show_progress=False)
    spent = 0.0
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        texts = [f"store document {i}" for i in range(lo, hi)]
        encoder.vectors = dict(zip(texts, unit_vectors(rng, hi - lo, dim), strict=True))
        t = time.perf_counter()
        store.add(texts, ids=[f"s{i}" for i in range(lo, hi)])
        spent += time.perf_counter() - t
    return n / spent


def search_latency(col: Any, dim: int, queries: int, per_call: int, rng: np.random.Generator) -> list[float]:
    """Milliseconds per call of a top-10 query with ``per_call`` query vectors."""
    out = []
    for _ in range(queries):
        q = unit_vectors(rng, per_call, dim)
        t = time.perf_counter()
        col.query(query_embeddings=q, n_results=10, include=["distances"])
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def run_store(args: argparse.Namespace) -> None:
    import chromadb

    rng = np.random.default_rng(0)
    folder = tempfile.mkdtemp(prefix="bench-chroma-", dir=args.tmp)
    client = chromadb.PersistentClient(path=folder, settings=chromadb.config.Settings(anonymized_telemetry=False))
    dim = args.dim
    print(f"Chroma {chromadb.__version__}, embedded PersistentClient at {folder}; {dim} dims, cosine HNSW; "
          f"threads={args.threads or 'default'}")
    print("\ningest (random unit vectors, generation not timed)")
    print(f"{'variant':38} {'vectors':>8} {'vectors/s':>10} {'x naive':>8}")
    naive = ingest(open_collection(client, "naive", args.threads), args.naive_n, dim, 1, rng)
    print(f"{'naive: one add() per vector':38} {args.naive_n:>8} {naive:>10.0f} {1.0:>8.1f}")
    rates = {}
    for batch in args.batch_sizes:
        rates[batch] = ingest(open_collection(client, f"b{batch}", args.threads), args.sweep_n, dim, batch, rng)
        print(f"{f'collection.add, batch {batch}':38} {args.sweep_n:>8} {rates[batch]:>10.0f} "
              f"{rates[batch] / naive:>8.1f}")
    via_store = store_ingest(folder, "via-store", args.sweep_n, dim, args.store_batch, rng)
    print(f"{f'ChromaStore.add, batch {args.store_batch}':38} {args.sweep_n:>8} {via_store:>10.0f} "
          f"{via_store / naive:>8.1f}")
    for name in ["naive", *(f"b{b}" for b in args.batch_sizes)]:
        client.delete_collection(name)
    client.delete_collection("via-store")

    print(f"\n{args.n} vectors at batch {args.store_batch} (collection.add), then top-10 search")
    col = open_collection(client, "main", args.threads)
    t = time.perf_counter()
    done, rate_log = 0, []
    while done < args.n:
        step = min(args.report_every, args.n - done)
        rate_log.append((done + step, ingest(col, step, dim, args.store_batch, rng, start=done)))
        done += step
        logger.info("%d vectors in, last %d at %.0f vectors/s", done, step, rate_log[-1][1])
    wall = time.perf_counter() - t
    print(f"ingest: {args.n / wall:.0f} vectors/s overall ({wall:.0f} s); "
          + ", ".join(f"{r:.0f}/s up to {k // 1000}k" for k, r in rate_log))
    one = search_latency(col, dim, args.queries, 1, rng)
    many = search_latency(col, dim, max(10, args.queries // 10), 32, rng)
    print(f"search, 1 query per call:   p50 {pct(one, 50):.1f} ms, p99 {pct(one, 99):.1f} ms ({len(one)} calls)")
    print(f"search, 32 queries per call: p50 {pct(many, 50):.1f} ms, p99 {pct(many, 99):.1f} ms "
          f"({pct(many, 50) / 32:.2f} ms per query at p50; {len(many)} calls)")
    print(f"\nindex on disk: {sum(p.stat().st_size for p in Path(folder).rglob('*') if p.is_file()) / 2**30:.2f} GiB")
    if not args.keep:
        import shutil

        del col, client
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- served gap
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(model_dir: Path, extra: list[str], log_path: Path, timeout_s: float = 600) -> tuple[Any, str | None]:
    """A vLLM server for CPU in its own process group: (process, base_url), or (process, None) if it died."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048",
           "--dtype", "float32", "--enforce-eager", *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, None
        try:
            with opener.open(base + "/models", timeout=2):
                return proc, base
        except OSError:
            time.sleep(1)
    return proc, None


def stop(proc: Any) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the group our own Popen started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def gap_texts(n_docs: int, n_queries: int) -> tuple[list[str], list[str]]:
    docs: list[str] = []
    for rec in openstax_records("chemistry-bundle", DATA / "openstax"):
        docs.append(rec["text"])
        if len(docs) == n_docs:
            break
    queries: list[str] = []
    with gzip.open(DATA / "mmlu" / "test" / "college_chemistry_test.csv.gz", "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            queries.append(row["question"])
            if len(queries) == n_queries:
                break
    return docs, queries


def run_served_gap(args: argparse.Namespace) -> None:
    from reasonir_rag import ReasonIREncoder
    from reasonir_rag.encoding.served import VLLM_SERVE_ARGS, OpenAIEmbeddingsEncoder
    from reasonir_rag.offline import build_tiny_reasonir

    work = Path(tempfile.mkdtemp(prefix="bench-served-", dir=args.tmp))
    model_dir = build_tiny_reasonir(work / "tiny", hidden_size=128)  # vLLM's CPU attention: head_dim >= 32
    local = ReasonIREncoder.from_pretrained(str(model_dir), device="cpu", max_length=args.max_length)
    docs, queries = gap_texts(args.docs, args.queries)
    ref_d = local.encode_documents(docs)
    ref_q = local.encode_queries(queries, task="theoremqa_questions")
    variants = [
        ("faithful (bidirectional, token states, client pools text)", VLLM_SERVE_ARGS["faithful"], "text-tokens"),
        ("bidirectional, server mean", VLLM_SERVE_ARGS["bidirectional-mean"], "server"),
        ("causal LlamaModel, server mean", VLLM_SERVE_ARGS["causal-mean"], "server"),
        ("GritLM architecture", ["--runner", "pooling", "--hf-overrides", json.dumps({"architectures": ["GritLM"]})],
         "server"),
    ]
    print(f"tiny ReasonIR-shaped Llama (hidden 128, 2 layers, random weights, real Llama-3.1 tokenizer), float32; "
          f"{len(docs)} OpenStax passages, {len(queries)} MMLU questions (BRIGHT math instruction), "
          f"max_length {args.max_length}")
    print(f"{'served as':58} {'docs min':>9} {'median':>8} {'queries min':>12} {'median':>8}")
    for label, extra, pooling in variants:
        proc, base = serve(model_dir, extra, work / f"{pooling}-{len(label)}.log")
        try:
            if base is None:
                log = (work / f"{pooling}-{len(label)}.log").read_text(errors="replace")
                lines = [ln.strip() for ln in reversed(log.splitlines())]
                reason = next((ln for ln in lines if "Value error" in ln or "not supported" in ln),
                              next((ln for ln in lines if "Error" in ln), "exited"))
                print(f"{label:58} did not start: {reason[:200]}")
                continue
            remote = OpenAIEmbeddingsEncoder("tiny", base, pooling=pooling, tokenizer=str(model_dir),
                                             max_length=args.max_length)
            d = np.sum(remote.encode_documents(docs) * ref_d, axis=1)
            q = np.sum(remote.encode_queries(queries, task="theoremqa_questions") * ref_q, axis=1)
            print(f"{label:58} {d.min():>9.5f} {np.median(d):>8.5f} {q.min():>12.5f} {np.median(q):>8.5f}")
        finally:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("store", help="Chroma ingest and search figures")
    s.add_argument("--n", type=int, default=100_000, help="vectors in the big index (default 100000)")
    s.add_argument("--dim", type=int, default=4096)
    s.add_argument("--naive-n", type=int, default=300, help="vectors for the one-at-a-time baseline")
    s.add_argument("--sweep-n", type=int, default=5000, help="vectors per batch-size variant")
    s.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000, 5000])
    s.add_argument("--store-batch", type=int, default=1000, help="ChromaStore's default batch")
    s.add_argument("--queries", type=int, default=300, help="single-query calls timed")
    s.add_argument("--report-every", type=int, default=20_000)
    s.add_argument("--threads", type=int, default=None, help="HNSW threads (default: Chroma's)")
    s.add_argument("--keep", action="store_true", help="keep the index folder")
    s.add_argument("--tmp", default=None, help="where the index folder goes")
    g = sub.add_parser("served-gap", help="served vs faithful embeddings, per vLLM serving mode")
    g.add_argument("--docs", type=int, default=32)
    g.add_argument("--queries", type=int, default=16)
    g.add_argument("--max-length", type=int, default=512)
    g.add_argument("--tmp", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "chromadb", "reasonir_rag"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.what == "served-gap":
        run_served_gap(args)
    else:
        run_store(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

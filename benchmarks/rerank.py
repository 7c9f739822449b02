"""Reranking cost per query: logits mode vs ReasonIR's generation mode, and KV prefix reuse on vs off, in one run.

Same model, same (query, top-k documents) pairs for every variant:
- ``logits + reuse``: one forward pass per document, the shared prompt head (instructions + query) computed once;
- ``logits, no reuse``: the same forward passes, each over the whole prompt;
- ``generate (ReasonIR)``: ReasonIR's script: sample 32 tokens (temperature 0.6, top-p 0.9), parse the score.
Queries and documents are SciFact claims and abstracts from ../shared/data (real text); the model is
SmolLM2-135M-Instruct from the offline kit unless ``--model`` names another local folder. Target: logits mode
>= 5x faster than generation mode.

    python benchmarks/rerank.py [--queries 3] [--k 10] [--max-doc-tokens 256] [--threads N] [--model PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import statistics
import time
from pathlib import Path

import torch

from reasonir_rag.llm import TransformersLLM
from reasonir_rag.offline import smollm2_folder
from reasonir_rag.reranker import QwenReranker

logger = logging.getLogger("bench.rerank")
DATA = Path(os.environ.get("REASONIR_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load_pairs(n_queries: int, k: int) -> list[tuple[str, list[str]]]:
    """SciFact test claims, each with its cited abstracts first and then other abstracts up to ``k``."""
    folder = DATA / "scifact"
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            queries[row["_id"]] = row["text"]
    corpus = {}
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = (row.get("title", "") + " " + row["text"]).strip()
    qrels: dict[str, list[str]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, _ = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, []).append(did)
    filler = list(corpus)
    pairs = []
    for i, (qid, gold) in enumerate(sorted(qrels.items(), key=lambda kv: int(kv[0]))[:n_queries]):
        docs = [corpus[d] for d in gold if d in corpus][:k]
        docs += [corpus[d] for d in filler[i * k : (i + 1) * k]][: k - len(docs)]
        pairs.append((queries[qid], docs))
    return pairs


def per_query_seconds(reranker: QwenReranker, pairs: list[tuple[str, list[str]]], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        for query, docs in pairs:
            start = time.perf_counter()
            reranker.rerank(query, docs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--k", type=int, default=10, help="documents reranked per query")
    parser.add_argument("--max-doc-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", default=None, help="local causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids stalls on a busy box)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    llm = TransformersLLM(args.model or str(smollm2_folder()), device=args.device)
    pairs = load_pairs(args.queries, args.k)
    logits = QwenReranker(llm, max_doc_tokens=args.max_doc_tokens)
    generate = QwenReranker(llm, mode="generate", max_doc_tokens=args.max_doc_tokens, max_new_tokens=32,
                            temperature=0.6, top_p=0.9, seed=0)
    logits.rerank(pairs[0][0], pairs[0][1][:2])  # warm-up

    reuse = per_query_seconds(logits, pairs, args.repeats)
    llm.reuse_prefix = False
    plain = per_query_seconds(logits, pairs, args.repeats)
    llm.reuse_prefix = True
    gen = per_query_seconds(generate, pairs, args.repeats)

    prompt_tokens = statistics.mean(llm.count_tokens(p) for q, d in pairs for p in logits.prompts(q, d))
    print(f"model {llm.model_name} on {args.device} ({torch.get_num_threads()} threads); {len(pairs)} queries x "
          f"top-{args.k}, mean prompt {prompt_tokens:.0f} tokens")
    print(f"{'variant':<28}{'s / query':>12}")
    for name, value in (("logits + prefix reuse", reuse), ("logits, no prefix reuse", plain),
                        ("generate 32 tok (ReasonIR)", gen)):
        print(f"{name:<28}{value:>12.3f}")
    ratio = gen / reuse
    print(f"generation / logits: {ratio:.1f}x (target >= 5x: {'met' if ratio >= 5 else 'NOT met'})")
    print(f"no reuse / reuse:    {plain / reuse:.2f}x")


if __name__ == "__main__":
    main()

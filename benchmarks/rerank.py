"""Reranking cost per query: logits mode vs ReasonIR's generation mode, and KV prefix reuse on vs off, in one run.

Same model, same (query, top-k documents) pairs for every variant of a setting:
- ``logits + prefix reuse``: the shared prompt head (instructions + query) runs once; all k documents then run
  as ONE batched forward over that cached prefix (in batches of ``--batch-size``), LM head at the last position;
- ``logits, no reuse``: the same forward passes, each over the whole prompt;
- ``generate (ReasonIR)``: ReasonIR's script: sample up to 32 tokens (temperature 0.6, top-p 0.9, stop at EOS)
  for all pairs at once (ReasonIR's vLLM batches of 50; here batches of ``--gen-batch``), parse the score.
Each setting is ``K:QUERY_TOKENS[:QUERIES]``: top-K documents, and a query of QUERY_TOKENS tokens (0: the SciFact
claim itself; N: the claim followed by other SciFact abstract text, cut to N tokens, a timing proxy for
ReasonIR's long rewritten queries). Documents are SciFact abstracts cut to ``--max-doc-tokens``.

Printed per variant: median wall seconds and median CPU seconds (this process) per query, and token-forwards per
query (tokens that went through the model, padding included, counted by a forward hook). Generation time is split
into prefill (the first forward of each generate call) and decode (the other 31 steps). On a shared, noisy box the
CPU-time ratio is the steadier one; both are printed. Target: logits mode >= 5x faster than generation mode.

    python benchmarks/rerank.py [--setting 10:0:3 --setting 50:512:1 --skip-plain] [--max-doc-tokens 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from reasonir_rag.llm import TransformersLLM
from reasonir_rag.offline import smollm2_folder
from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.sample_data import read_jsonl, scifact_dir

logger = logging.getLogger("bench.rerank")


def load_scifact() -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    folder = scifact_dir()  # CC BY-NC 2.0: non-commercial use only
    queries = {row["_id"]: row["text"] for row in read_jsonl(folder / "queries.jsonl.gz")}
    corpus = {row["_id"]: (row.get("title", "") + " " + row["text"]).strip()
              for row in read_jsonl(folder / "corpus.jsonl.gz")}
    qrels: dict[str, list[str]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, _ = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, []).append(did)
    return queries, corpus, qrels


def load_pairs(n_queries: int, k: int, query_tokens: int = 0, llm: TransformersLLM | None = None
               ) -> list[tuple[str, list[str]]]:
    """SciFact test claims, each with its cited abstracts first and then other abstracts up to ``k``. With
    ``query_tokens`` the claim is extended with abstracts from the end of the corpus (never among the candidates)
    and cut to that many tokens."""
    queries, corpus, qrels = load_scifact()
    ids = list(corpus)
    pairs = []
    for i, (qid, gold) in enumerate(sorted(qrels.items(), key=lambda kv: int(kv[0]))[:n_queries]):
        docs = [corpus[d] for d in gold if d in corpus][:k]
        docs += [corpus[d] for d in ids[i * k : (i + 1) * k]][: k - len(docs)]
        query = queries[qid]
        if query_tokens and llm is not None:
            filler = " ".join(corpus[d] for d in ids[-(i + 1) * 8 : len(ids) - i * 8])
            query = llm.truncate(query + "\n" + filler, query_tokens)
        pairs.append((query, docs))
    return pairs


@dataclass
class ForwardLog:
    """Model forwards seen by a hook: input length and seconds of each call."""

    calls: list[tuple[int, int, float]] = field(default_factory=list)  # (rows, seq_len, seconds)
    _start: float = 0.0

    def attach(self, model: torch.nn.Module) -> Callable[[], None]:
        def pre(module, args, kwargs):
            self._start = time.perf_counter()

        def post(module, args, kwargs, output):
            ids = kwargs.get("input_ids", args[0] if args else None)
            rows, seq = (ids.shape[0], ids.shape[1]) if ids is not None else (0, 0)
            self.calls.append((rows, seq, time.perf_counter() - self._start))

        a = model.register_forward_pre_hook(pre, with_kwargs=True)
        b = model.register_forward_hook(post, with_kwargs=True)
        return lambda: (a.remove(), b.remove())


@dataclass
class Result:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    prefill: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    generated: list[float] = field(default_factory=list)


def measure(llm: TransformersLLM, reranker: QwenReranker, pairs: list[tuple[str, list[str]]], repeats: int,
            generation: bool = False) -> Result:
    res = Result()
    for _ in range(repeats):
        for query, docs in pairs:
            log = ForwardLog()
            detach = log.attach(llm.model)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                out = reranker.rerank(query, docs)
            finally:
                detach()
            res.wall.append(time.perf_counter() - wall)
            res.cpu.append(time.process_time() - cpu)
            res.tokens.append(sum(rows * seq for rows, seq, _ in log.calls))
            if generation:  # the first forward of a generate call has the prompt; the rest are single-token steps
                res.prefill.append(sum(s for _, seq, s in log.calls if seq > 1))
                res.decode.append(sum(s for _, seq, s in log.calls if seq == 1))
                res.generated.append(statistics.mean(
                    llm.count_tokens(d.metadata.get("rerank_output", "")) for d in out))
    return res


def run_setting(llm: TransformersLLM, k: int, query_tokens: int, n_queries: int, args) -> None:
    pairs = load_pairs(n_queries, k, query_tokens, llm)
    logits = QwenReranker(llm, max_doc_tokens=args.max_doc_tokens)
    generate = QwenReranker(llm, mode="generate", max_doc_tokens=args.max_doc_tokens, max_tokens=32,
                            temperature=0.6, top_p=0.9, seed=0)
    prompts = [p for q, d in pairs for p in logits.prompts(q, d)]
    # the prompt head all documents share (instructions + query): what prefix reuse computes once
    head = os.path.commonprefix(logits.prompts(*pairs[0]))  # noqa: RUF071 (a string prefix is meant)
    prompt_tokens = statistics.mean(llm.count_tokens(p) for p in prompts)
    query_len = statistics.mean(llm.count_tokens(q) for q, _ in pairs)

    llm.batch_size, llm.max_tokens_per_batch = args.batch_size, args.batch_size * 4096
    logits.rerank(pairs[0][0], pairs[0][1][:2])  # warm-up
    reuse = measure(llm, logits, pairs, args.repeats)
    plain = None
    if not args.skip_plain:
        llm.reuse_prefix = False
        plain = measure(llm, logits, pairs, args.repeats)
        llm.reuse_prefix = True
    # generation batched like ReasonIR's vLLM call (50 prompts at once), never slower than the logits batching
    llm.batch_size, llm.max_tokens_per_batch = args.gen_batch, args.gen_batch * 4096
    gen = measure(llm, generate, pairs, args.repeats, generation=True)
    llm.batch_size, llm.max_tokens_per_batch = args.batch_size, args.batch_size * 4096

    med = statistics.median
    print(f"\n== top-{k}, query {query_len:.0f} tokens, prefix {llm.count_tokens(head)} tokens, mean prompt "
          f"{prompt_tokens:.0f} tokens, docs <= {args.max_doc_tokens} tokens; {len(pairs)} queries x "
          f"{args.repeats} repeats")
    print(f"{'variant':<30}{'wall s/q':>10}{'cpu s/q':>10}{'tok-fwd/q':>11}")
    for name, r in (("logits + prefix reuse", reuse), ("logits, no prefix reuse", plain),
                    ("generate 32 tok (ReasonIR)", gen)):
        if r is None:
            print(f"{name:<30}{'skipped (--skip-plain)':>31}")
        else:
            print(f"{name:<30}{med(r.wall):>10.2f}{med(r.cpu):>10.2f}{med(r.tokens):>11.0f}")
    share = med(gen.decode) / max(1e-9, med(gen.prefill) + med(gen.decode))
    print(f"generation split: prefill {med(gen.prefill):.2f} s, decode {med(gen.decode):.2f} s "
          f"({100 * share:.0f}% of forward time), mean {statistics.mean(gen.generated):.1f} tokens generated")
    wall_ratio, cpu_ratio = med(gen.wall) / med(reuse.wall), med(gen.cpu) / med(reuse.cpu)
    verdict = "met" if min(wall_ratio, cpu_ratio) >= 5 else "NOT met"
    print(f"generation / logits+reuse: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x (target >= 5x: {verdict}); "
          f"token-forwards {med(gen.tokens) / med(reuse.tokens):.2f}x")
    if plain is not None:
        print(f"no reuse / reuse: wall {med(plain.wall) / med(reuse.wall):.2f}x, "
              f"cpu {med(plain.cpu) / med(reuse.cpu):.2f}x; generation / logits without reuse: "
              f"cpu {med(gen.cpu) / med(plain.cpu):.2f}x")
    # vLLM's automatic prefix caching (on by default in vLLM V1) would let generation skip the shared head too;
    # then generation costs about logits+reuse plus its decode steps (estimate from the split above)
    apc = (med(reuse.wall) + med(gen.decode)) / med(reuse.wall)
    print(f"estimate if generation also reused the prefix (vLLM prefix caching): ~{apc:.2f}x (wall-based)")


def parse_setting(text: str, default_queries: int) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(":")]
    if len(parts) not in (2, 3) or min(parts) < 0 or parts[0] < 1:
        raise argparse.ArgumentTypeError(f"setting must be K:QUERY_TOKENS[:QUERIES], got {text!r}")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else default_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", action="append", default=None,
                        help="K:QUERY_TOKENS[:QUERIES], repeatable (default 10:0; 50:512:1 = a long rewritten query)")
    parser.add_argument("--queries", type=int, default=3, help="queries per setting when the setting has none")
    parser.add_argument("--max-doc-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16, help="documents per logits forward")
    parser.add_argument("--gen-batch", type=int, default=50, help="prompts per generate call (ReasonIR: 50)")
    parser.add_argument("--skip-plain", action="store_true",
                        help="skip the no-reuse variant (about the cost of generation's prefill) on slow boxes")
    parser.add_argument("--model", default=None, help="local causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids stalls on a busy box)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # generation-mode parse failures are expected on SmolLM2
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [parse_setting(s, args.queries) for s in (args.setting or ["10:0"])]

    llm = TransformersLLM(args.model or str(smollm2_folder()), device=args.device)
    print(f"model {llm.model_name} on {args.device} ({torch.get_num_threads()} threads, {llm.dtype})")
    for k, query_tokens, n_queries in settings:
        run_setting(llm, k, query_tokens, n_queries, args)


if __name__ == "__main__":
    main()

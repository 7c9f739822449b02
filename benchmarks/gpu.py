"""GPU figures for issue #8, in one run: encoder tokens/s and MFU, reranker latency per query.

Random weights in the real shapes (no download: throughput does not depend on the weights' values), bf16:
- encoder, a Llama-3.1-8B-shaped bidirectional ReasonIR backbone over a synthetic mixed-length corpus
  (lognormal, median ~300 tokens, capped at 2048): the GritLM-style loop (input order, batch 32, pad to longest),
  ReasonIREncoder with length-sorted padded batches, with packed varlen batches, and packed + torch.compile;
  tokens/s and MFU against the bf16 matmul peak measured in the same run (FLOPs counted: 2 x non-embedding
  parameters per token plus bidirectional attention, 4 x L^2 x hidden per layer per sequence, useful tokens only);
- reranker, a Qwen2.5-7B-shaped causal LM: top-100 pointwise rerank of ~700-token (query, document) prompts,
  QwenReranker logits mode (shared query prefix computed once) vs ReasonIR's generation mode (32 sampled tokens).

Everything runs through the package (ReasonIREncoder, reasonir_rag.encoding.backbones.embed_batch, QwenReranker,
TransformersLLM); a word-level stand-in tokenizer replaces the real ones (not installed on a bare GPU machine;
one word = one token, so lengths are exact). The random 7B model is put in place of the tiny model a
TransformersLLM loads (``llm.model = ...``): the same backend code runs.

    PYTHONPATH=. python3 benchmarks/gpu.py                  # H100/H200: < 6 min, < 70 GB of GPU memory
    PYTHONPATH=. python3 benchmarks/gpu.py --smoke          # CPU, tiny shapes, seconds (a test runs this)

Results print as a table and go to --json (default $OUT/gpu.json when $OUT is set).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reasonir_rag.encoding import backbones
from reasonir_rag.encoding.encoder import PRESETS, EncoderConfig, ReasonIREncoder
from reasonir_rag.llm import TransformersLLM
from reasonir_rag.pipeline.reranker import QwenReranker

logger = logging.getLogger("bench.gpu")

N_WORDS = 20000
# Llama-3.1-8B and Qwen2.5-7B-Instruct shapes (from their published config.json files)
LLAMA_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                rms_norm_eps=1e-5)
QWEN_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768, rope_theta=1000000.0,
               rms_norm_eps=1e-6, tie_word_embeddings=False)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=N_WORDS + 64, max_position_embeddings=4096)


class Clock:
    """Wall time with the device synchronised, so GPU work is counted where it happens."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def word_tokenizer(bos: bool) -> Any:
    """A real fast tokenizer (word level): ``w123`` words, digits and punctuation are one token each."""
    import tokenizers
    import transformers

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = specials + [str(d) for d in range(10)] + list(".,:;!?'\"()[]<>|/-_*=+#") + [f"w{i}" for i in range(N_WORDS)]
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    if bos:
        backend.post_processor = tokenizers.processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 2)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>",
        bos_token="<s>" if bos else None, model_max_length=131072)


def build(cls: Any, config: Any, device: str, dtype: Any) -> Any:
    """A randomly initialised model made directly in ``dtype`` on ``device`` (no fp32 copy of 8B weights)."""
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(N_WORDS)}" for _ in range(n))


def corpus(n_docs: int, median: int = 300, cap: int = 2048, seed: int = 0) -> list[str]:
    """Lognormal lengths, median ~300 tokens, clipped to [16, 2048] (the anchor recipe's corpus)."""
    rng = random.Random(seed)
    return [words(rng, int(min(cap, max(16, math.exp(rng.gauss(math.log(median), 0.8)))))) for _ in range(n_docs)]


def peak_tflops(device: str, dtype: Any, smoke: bool) -> float:
    """Measured dense matmul peak: mean of 10 products after 3 warm-ups (8192^3 on GPU)."""
    n = 512 if smoke else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    clock = Clock(device)
    for _ in range(3):
        a @ b
    t0 = clock()
    for _ in range(10):
        a @ b
    return 2 * n**3 * 10 / (clock() - t0) / 1e12


class Flops:
    """Useful FLOPs of encoding rows of given lengths (pads excluded: every method gets the same credit)."""

    def __init__(self, config: Any, model: Any):
        params = sum(p.numel() for p in model.parameters())
        self.nonembed = params - config.vocab_size * config.hidden_size
        self.per_token = 2 * self.nonembed
        self.attention = 4 * config.hidden_size * config.num_hidden_layers  # x L^2 per sequence

    def __call__(self, lengths: list[int]) -> float:
        return self.per_token * sum(lengths) + self.attention * sum(n * n for n in lengths)


def naive_gritlm_loop(encoder: ReasonIREncoder, texts: list[str], batch_size: int = 32) -> None:
    """GritLM.encode's algorithm: input order, fixed batches padded to the longest (tokenizing inside the loop)."""
    backbone = encoder._backbones[0]
    prefix = encoder.document_prefix
    for start in range(0, len(texts), batch_size):
        rows, ranges = encoder._rows(texts[start : start + batch_size], prefix, "documents")
        backbones.embed_batch(backbone, rows, ranges)


def encoder_section(args, device: str, dtype: Any, out: dict, deadline: float) -> Callable[[], None] | None:
    """The eager encoder runs now; returns the compiled run, kept for last (compiling may take minutes)."""
    import transformers

    clock = Clock(device)
    config = transformers.LlamaConfig(**(TINY if args.smoke else LLAMA_8B))
    t0 = time.perf_counter()
    model = build(transformers.LlamaModel, config, device, dtype)
    backbones.make_bidirectional(model)
    out["encoder_init_s"] = round(time.perf_counter() - t0, 1)
    backbone = backbones.Backbone(model, word_tokenizer(bos=True), config.hidden_size, device, dtype, "random")
    enc_config = EncoderConfig(name="random Llama-3.1-8B shape" if not args.smoke else "random tiny Llama",
                               preset="reasonir", **PRESETS["reasonir"])
    flops = Flops(config, model)
    texts = corpus(args.docs, 40 if args.smoke else 300, 256 if args.smoke else 2048)
    padded = ReasonIREncoder([backbone], enc_config, attention="padded", show_progress=False)
    rows, _ = padded._rows(texts, padded.document_prefix, "documents")
    lengths = [len(r) for r in rows]
    total = sum(lengths)
    out["corpus"] = {"docs": len(texts), "tokens": total, "median_tokens": statistics.median(lengths),
                     "max_tokens": max(lengths)}
    work = flops(lengths)
    runs = out.setdefault("encoder", {})

    def measure(name: str, fn, warm) -> None:
        if time.perf_counter() > deadline:
            runs[name] = {"skipped": "time budget spent"}
            return
        try:
            t0 = clock()
            warm()
            warm_s = clock() - t0
            t0 = clock()
            fn()
            s = clock() - t0
        except Exception as exc:  # one failing method must not lose the others' figures
            logger.exception("%s failed", name)
            runs[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            return
        runs[name] = {"s": round(s, 2), "tok_per_s": round(total / s), "warmup_s": round(warm_s, 1),
                      "mfu": round(work / s / 1e12 / out["peak_tflops"], 3)}
        logger.warning("%s: %s", name, runs[name])
        dump(args, out)

    few = texts[:64]
    measure("gritlm_loop_bs32", lambda: naive_gritlm_loop(padded, texts), lambda: naive_gritlm_loop(padded, few))
    measure("sorted_padded", lambda: padded.encode_documents(texts), lambda: padded.encode_documents(few))
    packed = ReasonIREncoder([backbone], enc_config, attention="packed", show_progress=False)
    out["packed_attention"] = packed.attention
    if packed.attention == "packed":
        from reasonir_rag.encoding.packed import varlen_kernel

        out["varlen_kernel"] = varlen_kernel(device, dtype)[1]
        measure("packed_varlen", lambda: packed.encode_documents(texts), lambda: packed.encode_documents(few))
        sample = texts[:: max(1, len(texts) // 48)]  # the packed path's maths at full shape: vs padded, same run
        a, b = padded.encode_documents(sample), packed.encode_documents(sample)
        out["packed_vs_padded"] = {"texts": len(sample), "max_abs_diff": round(float(abs(a - b).max()), 5),
                                   "min_cosine": round(float((a * b).sum(1).min()), 5)}
    else:
        runs["packed_varlen"] = {"skipped": "no varlen kernel on this device (see log)"}
    if packed.attention != "packed" or not args.compile or args.smoke:
        return None

    def compiled_run() -> None:
        compiled = ReasonIREncoder([backbone], enc_config, attention="packed", compile=True, show_progress=False)
        # warm-up: the whole corpus once (compiling, and the same packed shapes as the timed run)
        measure("packed_varlen_compile", lambda: compiled.encode_documents(texts),
                lambda: compiled.encode_documents(texts[::-1]))
        runs.get("packed_varlen_compile", {})["compiled"] = compiled._compile_backend is not None
        dump(args, out)

    return compiled_run


def rerank_section(args, device: str, dtype: Any, out: dict, deadline: float) -> None:
    import transformers

    clock = Clock(device)
    tok = word_tokenizer(bos=False)
    with tempfile.TemporaryDirectory() as tmp:  # a tiny saved model so that TransformersLLM loads as usual
        tiny = transformers.Qwen2Config(**TINY, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        build(transformers.Qwen2ForCausalLM, tiny, "cpu", torch.float32).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        llm = TransformersLLM(tmp, device=device, dtype=dtype)
    config = transformers.Qwen2Config(**(TINY if args.smoke else QWEN_7B), eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id)
    t0 = time.perf_counter()
    llm.model = build(transformers.Qwen2ForCausalLM, config, device, dtype)  # random 7B in the tiny one's place
    llm.model.generation_config.eos_token_id = tok.eos_token_id
    llm.model.generation_config.pad_token_id = tok.pad_token_id
    out["reranker_init_s"] = round(time.perf_counter() - t0, 1)
    rng = random.Random(1)
    queries = [(words(rng, args.query_tokens), [words(rng, args.doc_tokens) for _ in range(args.k)])
               for _ in range(args.queries + 1)]
    logits = QwenReranker(llm, mode="logits", max_doc_tokens=2048)
    generate = QwenReranker(llm, mode="generate", max_doc_tokens=2048, max_tokens=4 if args.smoke else 32)
    sizes = [llm.count_tokens(p) for p in logits.prompts(*queries[0])]
    out["rerank_setup"] = {"k": args.k, "prompt_tokens_mean": round(statistics.mean(sizes)),
                           "queries": args.queries, "generate_queries": args.generate_queries}
    runs = out.setdefault("rerank", {})

    def per_query(name: str, reranker: QwenReranker, n: int) -> None:
        if time.perf_counter() > deadline:
            runs[name] = {"skipped": "time budget spent"}
            return
        try:
            t0 = clock()
            if not args.smoke:
                reranker.rerank(queries[0][0], queries[0][1][: max(2, args.k // 10)])  # warm-up
            warm = clock() - t0
            times = []
            for query, docs in queries[1 : 1 + n]:
                t0 = clock()
                ranked = reranker.rerank(query, docs)
                times.append(clock() - t0)
                failed = sum("rerank_error" in d.metadata for d in ranked)
        except Exception as exc:
            logger.exception("%s failed", name)
            runs[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            return
        runs[name] = {"s_per_query": round(statistics.median(times), 3), "runs": len(times),
                      "warmup_s": round(warm, 1), "unscored_docs": failed}
        logger.warning("%s: %s", name, runs[name])
        dump(args, out)

    per_query("logits_shared_prefix", logits, args.queries)
    per_query("generate_32_tokens", generate, args.generate_queries)


def free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def dump(args, out: dict) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


def ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def report(out: dict) -> str:
    enc, rr = out.get("encoder", {}), out.get("rerank", {})
    base = enc.get("gritlm_loop_bs32", {}).get("tok_per_s")
    lines = [f"device: {out['device']}  torch {out['torch']}  transformers {out['transformers']}  "
             f"{out['dtype']} matmul peak: {out['peak_tflops']:.1f} TFLOP/s",
             f"corpus: {out.get('corpus')}  packed attention: {out.get('packed_attention')} "
             f"({out.get('varlen_kernel', 'no varlen kernel')}); packed vs padded: {out.get('packed_vs_padded')}",
             f"{'encoder method':<28}{'tokens/s':>10}{'MFU':>7}{'vs GritLM':>10}{'s':>8}"]
    for name, r in enc.items():
        if "tok_per_s" in r:
            lines.append(f"{name:<28}{r['tok_per_s']:>10}{r['mfu']:>7.2f}{ratio(r['tok_per_s'], base) or '':>10}"
                         f"{r['s']:>8}")
        else:
            lines.append(f"{name:<28}  {r}")
    best = max((r for k, r in enc.items() if k.startswith("packed") and "tok_per_s" in r),
               key=lambda r: r["tok_per_s"], default=None)
    if best:
        met = best["mfu"] >= 0.75 and (ratio(best["tok_per_s"], base) or 0) >= 5
        lines.append(f"target (>= 0.75 MFU and >= 5x the GritLM loop): {'MET' if met else 'NOT met'} "
                     f"(best packed: {best['tok_per_s']} tokens/s, MFU {best['mfu']})")
    lines.append(f"rerank: {out.get('rerank_setup')}")
    for name, r in rr.items():
        lines.append(f"{name:<28}  {r}")
    lq = rr.get("logits_shared_prefix", {}).get("s_per_query")
    gq = rr.get("generate_32_tokens", {}).get("s_per_query")
    if lq and gq:
        met = lq <= 1.0 and gq / lq >= 5
        lines.append(f"rerank target (<= 1 s/query and >= 5x generation): {'MET' if met else 'NOT met'} "
                     f"({lq} s/query, {gq / lq:.1f}x)")
    lines.append(f"total wall time: {out.get('total_s')} s; peak GPU memory: {out.get('max_mem_gb')} GB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU: checks the script runs")
    parser.add_argument("--docs", type=int, default=None, help="corpus size (default 1000; smoke 24)")
    parser.add_argument("--k", type=int, default=None, help="documents reranked per query (default 100; smoke 6)")
    parser.add_argument("--queries", type=int, default=3, help="timed logits-mode queries")
    parser.add_argument("--generate-queries", type=int, default=1, help="timed generation-mode queries")
    parser.add_argument("--query-tokens", type=int, default=None, help="default 150 (smoke 20)")
    parser.add_argument("--doc-tokens", type=int, default=None, help="default 450 (smoke 40)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--budget-s", type=float, default=330.0, help="skip what would start after this")
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    args.docs = args.docs or (12 if args.smoke else 1000)
    args.k = args.k or (3 if args.smoke else 100)
    args.query_tokens = args.query_tokens or (10 if args.smoke else 150)
    args.doc_tokens = args.doc_tokens or (20 if args.smoke else 450)
    if args.smoke:
        args.queries, args.generate_queries = 1, 1
    if args.json is None and os.environ.get("OUT"):
        args.json = str(Path(os.environ["OUT"]) / "gpu.json")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    deadline = start + args.budget_s
    import transformers

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(0) if device == "cuda" else ("cpu (smoke)" if args.smoke else "cpu")
    out: dict[str, Any] = {"device": name,
                           "torch": torch.__version__, "transformers": transformers.__version__,
                           "dtype": str(dtype).replace("torch.", ""),
                           "peak_tflops": peak_tflops(device, dtype, args.smoke)}
    if device == "cpu" and not args.smoke:
        logger.warning("no CUDA device: running the full shapes on the CPU will take very long; use --smoke")
    compiled_run = encoder_section(args, device, dtype, out, deadline)
    free(device)
    rerank_section(args, device, dtype, out, deadline)  # beside the 8B encoder: ~31 GB of weights together
    free(device)
    if compiled_run is not None:
        compiled_run()
    out["total_s"] = round(time.perf_counter() - start, 1)
    if device == "cuda":
        out["max_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    dump(args, out)
    print(report(out))
    return out


if __name__ == "__main__":
    main()

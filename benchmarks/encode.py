"""Encoder throughput: a GritLM-style loop vs ReasonIREncoder (padded and packed), same model and corpus, in one run.

The naive loop is what GritLM's ``encode`` does: input order, a fixed batch size, pad to the longest.
ReasonIREncoder runs length-sorted padded batches, then packed batches (``attention="packed"``: one row per
batch, block-diagonal attention, no padding; on a CPU the attention is SDPA per sequence, on CUDA varlen flash).
The corpus has lognormal lengths with a median near 300 tokens (capped at 2048), like reasoning corpora.
By default the model is a tiny random ReasonIR-shaped Llama with the real Llama-3.1 tokenizer (offline);
pass ``--model PATH`` for a real checkpoint.

    python benchmarks/encode.py [--docs 600] [--repeats 3] [--model PATH] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import tempfile
import time

import numpy as np
import torch

from reasonir_rag import ReasonIREncoder
from reasonir_rag.offline import build_tiny_reasonir

logger = logging.getLogger("bench.encode")

WORDS = (
    "energy enzyme momentum photon membrane buffer equilibrium torque orbit gene protein charge field "
    "entropy reaction catalyst velocity pressure volume molecule electron neutron isotope wave"
).split()


def make_corpus(encoder: ReasonIREncoder, n_docs: int, seed: int = 0) -> list[str]:
    """Texts whose token counts follow a lognormal law, median ~300, clipped to [16, 2048]."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n_docs):
        target = int(min(2048, max(16, math.exp(rng.gauss(math.log(300), 0.8)))))
        words = [rng.choice(WORDS) for _ in range(target)]  # ~1 token per word with this vocabulary
        texts.append(" ".join(words))
    return texts


def naive_gritlm_loop(encoder: ReasonIREncoder, texts: list[str], prefix: str, batch_size: int) -> np.ndarray:
    """GritLM.encode's algorithm: string prefix, input order, fixed batches padded to the longest."""
    backbone = encoder._backbones[0]
    tok = backbone.tokenizer
    n_prefix = len(tok(prefix)["input_ids"])
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = [prefix + t for t in texts[start : start + batch_size]]
            inputs = tok(batch, padding=True, truncation=True, max_length=encoder.config.max_length,
                         return_tensors="pt").to(backbone.device)
            hidden = backbone.model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].clone()
            mask[:, :n_prefix] = 0
            pooled = (hidden.float() * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="the naive loop's fixed batch size")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: tiny random ReasonIR)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_reasonir(tmp))
        encoder = ReasonIREncoder.from_pretrained(model, device=args.device, show_progress=False)
        texts = make_corpus(encoder, args.docs)
        n_tokens = sum(len(ids) for ids in encoder.tokenizer(texts, add_special_tokens=False)["input_ids"])
        prefix = encoder.document_prefix

        def timed(fn):
            times = []
            for _ in range(args.repeats):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                result = fn()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            return statistics.median(times), result

        naive_s, naive = timed(lambda: naive_gritlm_loop(encoder, texts, prefix, args.batch_size))
        ours_s, ours = timed(lambda: encoder.encode_documents(texts))
        max_diff = float(np.abs(naive - ours).max())
        # same loaded model; packed attention is switched on only now, after the padded runs
        packed = ReasonIREncoder(encoder._backbones, encoder.config, attention="packed", show_progress=False)
        packed_s, packed_out = timed(lambda: packed.encode_documents(texts))
        packed_diff = float(np.abs(packed_out - ours).max())

    print(f"model: {model if args.model else 'tiny random ReasonIR (2 layers, 64 dims, Llama-3.1 tokenizer)'}")
    print(f"device: {encoder._backbones[0].device}  threads: {torch.get_num_threads()}  docs: {len(texts)}  "
          f"text tokens: {n_tokens} (median {statistics.median(len(t.split()) for t in texts):.0f} words)")
    print(f"{'method':<42}{'median s':>10}{'tokens/s':>12}")
    naive_name = f"naive GritLM loop (input order, bs={args.batch_size})"
    print(f"{naive_name:<42}{naive_s:>10.2f}{n_tokens / naive_s:>12.0f}")
    print(f"{'ReasonIREncoder (sorted, token budget)':<42}{ours_s:>10.2f}{n_tokens / ours_s:>12.0f}")
    print(f"{'ReasonIREncoder (packed, ' + packed.attention + ')':<42}{packed_s:>10.2f}{n_tokens / packed_s:>12.0f}")
    print(f"speed-up: {naive_s / ours_s:.2f}x   max |difference| between the two: {max_diff:.2e}")
    print(f"packed vs padded: {ours_s / packed_s:.2f}x   vs naive: {naive_s / packed_s:.2f}x   "
          f"max |difference| packed vs padded: {packed_diff:.2e}")


if __name__ == "__main__":
    main()

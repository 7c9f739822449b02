"""Chunking one big text: peak memory and time, whole-text tokenization (the old path) vs windows, one run.

A text of ``--mb`` megabytes made of the shipped OpenStax passages (one long book, as ``reasonir-rag index``
gets a big .txt), chunked at 512/64 tokens with the Llama-3 tokenizer ReasonIR uses (``offline.llama3_tokenizer``,
real tokenizer files). Each mode runs in its own fresh process, so its peak resident memory
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of that child; HF tokenizers allocate in Rust, which
tracemalloc does not see) is its own:
- ``whole``: the text tokenized at once with offsets, kept as a list of spans then a list of starts (what
  ``chunk_text`` did before windowing);
- ``windowed``: ``chunk_text`` as it is (pieces of ``WINDOW_CHARS`` characters, starts in an ``array('q')``).
Both must give the same chunks (checked by their digest). Prints peak MB above the baseline process (the
tokenizer and the text loaded, nothing chunked), seconds, and the ratios windowed/whole.

    python benchmarks/chunking.py [--mb 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import resource
import subprocess
import sys
import time
from array import array
from collections.abc import Callable

logger = logging.getLogger("bench.chunking")


def make_text(mb: float) -> str:
    """OpenStax passages joined by blank lines, repeated up to ``mb`` megabytes of characters."""
    from reasonir_rag.sample_data import openstax_dir, openstax_records

    folder = openstax_dir()
    passages = [r["text"] for book in ("chemistry-bundle", "microbiology") for r in openstax_records(book, folder)]
    base = "\n\n".join(passages)
    size = int(mb * 1_000_000)
    return (base * (size // len(base) + 1))[:size]


def whole_text_starts(text: str, spans_of: Callable[[str], list[tuple[int, int]]]) -> list[int]:
    """The token starts as chunk_text computed them before windowing: one call on the whole text."""
    spans = spans_of(text)
    starts: list[int] = []
    low = 0
    for start, _ in spans:
        low = max(low, min(start, len(text)))
        starts.append(low)
    return starts


def child(mode: str, mb: float) -> None:
    """One measurement in this process: prints a JSON line with peak RSS before/after chunking and seconds."""
    from reasonir_rag.index import chunking
    from reasonir_rag.offline import llama3_tokenizer

    tokenizer = llama3_tokenizer()
    text = make_text(mb)
    chunking.chunk_text(text[:5000], tokenizer=tokenizer)  # warm the tokenizer up
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "whole":
        chunking.token_starts = whole_text_starts  # type: ignore[assignment]
    began = time.perf_counter()
    chunks = chunking.chunk_text(text, tokenizer=tokenizer, chunk_tokens=512, overlap=64)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest = hashlib.sha256(array("q", [x for c in chunks for x in (c.start, c.end)]).tobytes()).hexdigest()
    print(json.dumps({"mode": mode, "baseline_kb": baseline, "peak_kb": peak, "seconds": seconds,
                      "chunks": len(chunks), "digest": digest}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=10.0, help="size of the text in millions of characters")
    p.add_argument("--child", choices=["whole", "windowed"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.mb)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = {}
    for mode in ("whole", "windowed"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--mb", str(args.mb)],
                             check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    whole, windowed = results["whole"], results["windowed"]
    same = whole["digest"] == windowed["digest"]
    for r in (whole, windowed):
        r["above_mb"] = (r["peak_kb"] - r["baseline_kb"]) / 1024
        logger.info("%-8s peak %7.0f MB (%6.0f MB above the loaded baseline)  %6.1f s  %d chunks", r["mode"],
                    r["peak_kb"] / 1024, r["above_mb"], r["seconds"], r["chunks"])
    logger.info("text %.1f MB; windowed/whole: peak above baseline %.3f, total peak %.3f, time %.2f; same chunks: %s",
                args.mb, windowed["above_mb"] / max(whole["above_mb"], 1e-9), windowed["peak_kb"] / whole["peak_kb"],
                windowed["seconds"] / whole["seconds"], same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""Retrieval quality on a BEIR or BRIGHT collection: nDCG@10 and recall@100, dense against BM25.

``evaluate_retrieval`` embeds the collection's documents (the encoder's document prefix), encodes every query
(with the task's instruction: ReasonIR drops from 24.4 to about 20.5 BRIGHT nDCG@10 with a generic one),
ranks by exact cosine and scores the run as trec_eval does. ``BM25Retriever`` (bm25s) is the lexical baseline.

Offline: SciFact (BEIR format, the repository's ``data/scifact``; CC BY-NC 2.0, non-commercial use only) with
``minilm`` standing in for ReasonIR-8B, on a seeded subsample (all relevant documents of the sampled queries
plus random others) so that it runs in a minute on a CPU. ``--queries 0`` evaluates the whole test set
(published reference for all-MiniLM-L6-v2: nDCG@10 0.6451, MTEB). BRIGHT, in its published layout
(documents/, examples/):

    python cookbook/06_bright_beir_eval.py
    python cookbook/06_bright_beir_eval.py --queries 0 --encoder reasonir
    python cookbook/06_bright_beir_eval.py --bright /data/BRIGHT --task biology --encoder reasonir --queries 0

``REASONIR_COOKBOOK_SMOKE=1`` shrinks the defaults for the tests.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from reasonir_rag import BM25Retriever, ReasonIREncoder, evaluate_retrieval
from reasonir_rag.eval.ir_data import load_beir, load_bright, subsample
from reasonir_rag.sample_data import data_root

DATA = data_root()  # the sample data the repository ships (data/), or $REASONIR_DATA
SMOKE = os.environ.get("REASONIR_COOKBOOK_SMOKE") == "1"
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--beir", type=Path, default=DATA / "scifact",
                        help="a BEIR folder (default: the shipped SciFact, CC BY-NC 2.0: non-commercial)")
    source.add_argument("--bright", type=Path, help="a BRIGHT folder (needs --task)")
    parser.add_argument("--task", help="BRIGHT task, e.g. biology (its instruction is applied)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--encoder", default=os.environ.get("REASONIR_ENCODER", "minilm"),
                        help="minilm (offline stand-in), reasonir (ReasonIR-8B) or a checkpoint folder")
    parser.add_argument("--device", default=None)
    parser.add_argument("--queries", type=int, default=10 if SMOKE else 100, help="sampled queries; 0: all")
    parser.add_argument("--other-docs", type=int, default=100 if SMOKE else 1000, help="non-relevant docs kept")
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 baseline")
    args = parser.parse_args(argv)
    if args.bright and not args.task:
        parser.error("--bright needs --task")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    collection = (load_bright(args.bright, args.task) if args.bright else load_beir(args.beir, args.split))
    if args.queries:
        collection = subsample(collection, n_queries=args.queries, n_other_docs=args.other_docs, seed=0)
    info = collection.describe()
    print(f"{collection.name}: {info['queries']} queries, {info['documents']} documents\n")

    preset = args.encoder if args.encoder in ("minilm", "reasonir") else None
    encoder = ReasonIREncoder.from_pretrained(None if preset else args.encoder, preset=preset, device=args.device,
                                              show_progress=False)
    results = {encoder.config.name: evaluate_retrieval(collection, encoder, metrics=METRICS)}
    if not args.no_bm25:
        results["BM25 (bm25s)"] = evaluate_retrieval(collection, BM25Retriever(list(collection.corpus.values())),
                                                     metrics=METRICS)
    print("| retriever | " + " | ".join(METRICS) + " | seconds |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    for name, result in results.items():
        cells = [f"{result.scores.mean[m]:.4f}" for m in METRICS]
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(result.seconds.values()):.1f} |")
    if not args.queries and not args.bright and encoder.config.name.endswith("all-MiniLM-L6-v2"):
        print("\npublished all-MiniLM-L6-v2 on SciFact test (MTEB): nDCG@10 0.6451")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

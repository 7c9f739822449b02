"""Reranking retrieved passages with ReasonIR's pointwise LLM reranker, fully offline.

``QwenReranker`` asks an instruction-tuned LLM for a 0-5 relevance score per (question, passage) with
ReasonIR's prompt. In ``logits`` mode (default) it reads the probabilities of the digits "0".."5" after
"Relevance score: " in one forward pass and takes their expected value; ``generate`` mode samples an answer
and parses it, as ReasonIR's script did. The final score breaks ties with the retriever:
``alpha * rerank / 5 + (1 - alpha) * cosine`` (alpha 0.5).

Offline: ``minilm`` stands in for ReasonIR-8B and SmolLM2-135M-Instruct for Qwen2.5-7B-Instruct (ReasonIR's
reranker), over ~240 OpenStax passages, 10 candidates. With the real models:

    python cookbook/04_reranking.py
    python cookbook/04_reranking.py --encoder reasonir --base-url http://127.0.0.1:8000/v1 \
        --model Qwen/Qwen2.5-7B-Instruct --candidates 100 --max-doc-tokens 2048

``REASONIR_COOKBOOK_SMOKE=1`` shrinks the defaults for the tests.
Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from reasonir_rag import ChromaStore, QwenReranker, ReasonIREncoder
from reasonir_rag.sample_data import openstax_dir, openstax_records

DATA = openstax_dir()  # the shipped OpenStax books (CC BY 4.0), or $REASONIR_DATA/openstax
SMOKE = os.environ.get("REASONIR_COOKBOOK_SMOKE") == "1"
CHAPTERS = {
    "anatomy-physiology": "The Cardiovascular System: The Heart",
    "microbiology": "Circulatory and Lymphatic System Infections",
    "chemistry-bundle": "Gases",
}


def load_passages(folder: Path, total: int) -> list[dict[str, Any]]:
    """The first ``total / 3`` passages of each chapter in :data:`CHAPTERS`."""
    rows: list[dict[str, Any]] = []
    for name, chapter in CHAPTERS.items():
        rows += [r for r in openstax_records(name, folder) if r["chapter"] == chapter][: max(1, total // len(CHAPTERS))]
    return rows


def make_llm(args: argparse.Namespace) -> Any:
    """A served model (``--base-url``; key from OPENAI_API_KEY) or SmolLM2-135M-Instruct in-process."""
    if args.base_url:
        from reasonir_rag import OpenAICompatibleLLM

        return OpenAICompatibleLLM(args.model, base_url=args.base_url)
    from reasonir_rag import TransformersLLM
    from reasonir_rag.offline import smollm2_folder

    return TransformersLLM(args.model or str(smollm2_folder()), device="cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="Which valve keeps blood from flowing back from the pulmonary trunk "
                                               "into the right ventricle?")
    parser.add_argument("--encoder", default=os.environ.get("REASONIR_ENCODER", "minilm"),
                        help="minilm (offline stand-in), reasonir (ReasonIR-8B) or a checkpoint folder")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                        help="an OpenAI-compatible server returning log-probs (vLLM); default: SmolLM2 in-process")
    parser.add_argument("--model", default=os.environ.get("REASONIR_LLM_MODEL"),
                        help="served model name (with --base-url) or a local folder")
    parser.add_argument("--data", type=Path, default=DATA, help="the OpenStax JSONL folder")
    parser.add_argument("--passages", type=int, default=90 if SMOKE else 240)
    parser.add_argument("--candidates", type=int, default=5 if SMOKE else 10, help="retrieved, then reranked")
    parser.add_argument("--top-n", type=int, default=3, help="kept after reranking")
    parser.add_argument("--max-doc-tokens", type=int, default=128 if SMOKE else 192, help="passage cut in the prompt")
    parser.add_argument("--mode", choices=["logits", "generate"], default="logits")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the rerank score in the final score")
    args = parser.parse_args(argv)
    if args.base_url and not args.model:
        parser.error("--base-url needs --model (the served model name)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    preset = args.encoder if args.encoder in ("minilm", "reasonir") else None
    encoder = ReasonIREncoder.from_pretrained(None if preset else args.encoder, preset=preset, show_progress=False)
    reranker = QwenReranker(make_llm(args), mode=args.mode, alpha=args.alpha, max_doc_tokens=args.max_doc_tokens)
    passages = load_passages(args.data, args.passages)
    with tempfile.TemporaryDirectory() as tmp:
        store = ChromaStore("cookbook-reranking", encoder=encoder, path=tmp, show_progress=False)
        store.add([p["text"] for p in passages], ids=[p["id"] for p in passages],
                  metadatas=[{"book": p["book"], "section": p["section"]} for p in passages])
        candidates = store.search(args.question, k=args.candidates)
    start = time.perf_counter()
    ranked = reranker.rerank(args.question, candidates, top_n=args.top_n)
    seconds = time.perf_counter() - start

    print(f"encoder: {encoder.config.name}; reranker LLM: {reranker.llm.model_name} ({args.mode} mode)")
    print(f"Question: {args.question}\n")
    print(f"retrieved ({len(candidates)} candidates, cosine):")
    for rank, hit in enumerate(candidates, 1):
        print(f"  {rank:>2}. {hit.score:.3f}  {hit.metadata['section']}  ({hit.id})")
    print(f"\nreranked in {seconds:.1f} s, top {len(ranked)} (final = {args.alpha} * rerank/5 "
          f"+ {1 - args.alpha:g} * cosine):")
    before = {hit.id: rank for rank, hit in enumerate(candidates, 1)}
    for rank, hit in enumerate(ranked, 1):
        meta = hit.metadata
        print(f"  {rank:>2}. final {hit.score:.4f} = rerank {meta['rerank_score']:.3f}/5, cosine "
              f"{meta['retrieval_score']:.4f}  (was #{before[hit.id]})  {meta['section']}")
        print(f"      {' '.join(hit.text.split())[:160]}...")
    print("\nPassages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

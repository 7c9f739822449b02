"""Does retrieval help the reader? Closed-book against RAG on MMLU and GPQA, with ReasonIR's reader prompts.

``RAGEvaluator`` runs each condition (closed-book, rag, and optionally rag+rewrite, rag+rerank) over the same
questions with one reader, journals every result (a killed run resumes), and reports accuracy with bootstrap
CIs, the exact McNemar test and the gain against closed-book (ReasonIR-8B + Qwen2.5-7B-Instruct: +6.4% relative
on MMLU, +22.6% on GPQA in the paper). MMLU uses the zero-shot CoT prompt with 3 passages, GPQA the naive-RAG
prompt with 5 passages and a ``\\boxed{}`` answer.

GPQA is read from the official encrypted ``dataset.zip`` and decrypted in memory only: its authors ask that the
questions never appear in plain text, so this script prints no question, and its journal (which holds model
outputs) lives in a temporary folder that is deleted at the end.

Offline: ``minilm`` stands in for ReasonIR-8B and SmolLM2-135M-Instruct for the reader, over a few hundred
OpenStax passages. SmolLM2-135M is near chance on both benchmarks: the tables show the mechanics, not gains.

    python cookbook/05_mmlu_gpqa_eval.py
    python cookbook/05_mmlu_gpqa_eval.py --encoder reasonir --base-url http://127.0.0.1:8000/v1 \
        --model Qwen/Qwen2.5-7B-Instruct --mmlu-questions 500 --gpqa-questions 198 --max-tokens 2048 \
        --chroma-path .demo/chroma --collection openstax-reasonir-8b

``REASONIR_COOKBOOK_SMOKE=1`` shrinks the defaults for the tests.
Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from reasonir_rag import ChromaStore, EvalSettings, Journal, RAGEvaluator, ReasonIREncoder, load_gpqa, load_mmlu
from reasonir_rag.eval.report import render_markdown
from reasonir_rag.index.loaders import load_documents
from reasonir_rag.sample_data import data_root, jsonl_files

DATA = data_root()  # the sample data the repository ships (data/), or $REASONIR_DATA
SMOKE = os.environ.get("REASONIR_COOKBOOK_SMOKE") == "1"
MMLU_SUBJECTS = ["college_biology", "high_school_chemistry", "high_school_physics", "anatomy"]


def make_llm(args: argparse.Namespace) -> Any:
    """A served model (``--base-url``; key from OPENAI_API_KEY) or SmolLM2-135M-Instruct in-process."""
    if args.base_url:
        from reasonir_rag import OpenAICompatibleLLM

        return OpenAICompatibleLLM(args.model, base_url=args.base_url)
    from reasonir_rag import TransformersLLM
    from reasonir_rag.offline import smollm2_folder

    return TransformersLLM(args.model or str(smollm2_folder()), device="cpu")


def open_store(args: argparse.Namespace, encoder: Any, tmp: str) -> ChromaStore:
    """An existing collection (``--chroma-path``), else a temporary one of the first passages of each book."""
    if args.chroma_path:
        return ChromaStore(args.collection, encoder=encoder, path=args.chroma_path, create=False)
    store = ChromaStore("cookbook-eval", encoder=encoder, path=tmp, show_progress=False)
    for path in jsonl_files(DATA / "openstax"):
        docs = load_documents(path)
        store.add([d for _, d in zip(range(args.passages // 4), docs, strict=False)], show_progress=False)
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=os.environ.get("REASONIR_ENCODER", "minilm"),
                        help="minilm (offline stand-in), reasonir (ReasonIR-8B) or a checkpoint folder")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"),
                        help="an OpenAI-compatible server (…/v1); default: SmolLM2 in-process")
    parser.add_argument("--model", default=os.environ.get("REASONIR_LLM_MODEL"),
                        help="served model name (with --base-url) or a local folder")
    parser.add_argument("--mmlu", type=Path, default=DATA / "mmlu", help="MMLU folder (cais/mmlu CSV layout)")
    parser.add_argument("--gpqa", type=Path, default=DATA / "gpqa" / "dataset.zip", help="official GPQA zip")
    parser.add_argument("--mmlu-questions", type=int, default=2 if SMOKE else 16)
    parser.add_argument("--gpqa-questions", type=int, default=2 if SMOKE else 8, help="from GPQA diamond")
    parser.add_argument("--conditions", default="closed-book,rag", help="also: rag+rewrite, rag+rerank, ...")
    parser.add_argument("--max-tokens", type=int, default=16 if SMOKE else 64, help="reader's budget")
    parser.add_argument("--passages", type=int, default=80 if SMOKE else 400, help="temporary index size")
    parser.add_argument("--chroma-path", default=None, help="use this embedded Chroma folder instead")
    parser.add_argument("--collection", default="openstax-minilm", help="with --chroma-path")
    args = parser.parse_args(argv)
    if args.base_url and not args.model:
        parser.error("--base-url needs --model (the served model name)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    preset = args.encoder if args.encoder in ("minilm", "reasonir") else None
    encoder = ReasonIREncoder.from_pretrained(None if preset else args.encoder, preset=preset, show_progress=False)
    reader = make_llm(args)
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    benchmarks = {
        "mmlu": load_mmlu(args.mmlu, subjects=MMLU_SUBJECTS, sample=args.mmlu_questions, seed=0),
        "gpqa": load_gpqa(args.gpqa, "diamond", sample=args.gpqa_questions, seed=0),  # in memory only
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args, encoder, tmp)
        rewriter = reranker = None
        if any("rewrite" in c for c in conditions):
            from reasonir_rag import QueryRewriter

            rewriter = QueryRewriter(reader, max_tokens=args.max_tokens, encoder=encoder)
        if any("rerank" in c for c in conditions):
            from reasonir_rag import QwenReranker

            reranker = QwenReranker(reader, max_doc_tokens=256)
        print(f"encoder: {encoder.config.name}; reader: {reader.model_name}; {store.count()} passages\n")
        for name, dataset in benchmarks.items():
            settings = EvalSettings(conditions=conditions, max_tokens=args.max_tokens, candidates=10,
                                    max_passage_tokens=192, show_progress=False)
            with Journal(Path(tmp) / f"{name}.sqlite") as journal:
                evaluator = RAGEvaluator(reader=reader, journal=journal, retriever=store, rewriter=rewriter,
                                         reranker=reranker, settings=settings)
                report = evaluator.report(dataset, name)
            tables = render_markdown(report).split("\n## Run")[0]
            print(f"## {name.upper()} ({dataset.name}, {len(dataset)} questions)\n")
            print(tables.split("\n", 2)[2].strip() + "\n")
    print("Passages: OpenStax (Rice University), CC BY 4.0 -- access for free at openstax.org")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

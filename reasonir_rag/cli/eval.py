"""`reasonir-rag eval mmlu|gpqa|retrieval`: the evaluator from the command line."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from reasonir_rag.cli.common import (
    add_encoder_args,
    add_llm_timeout_arg,
    add_store_args,
    check_local_path,
    connection,
    encoder_name,
    load_encoder,
)
from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger("reasonir_rag.cli.main")


def register(subparsers: Any) -> None:
    from reasonir_rag.eval.gpqa import GPQA_RELEASE_URL
    from reasonir_rag.eval.runner import ALL_CONDITIONS
    from reasonir_rag.pipeline.reranker import RERANK_CANDIDATES

    parser = subparsers.add_parser("eval", help="measure RAG gains (mmlu, gpqa) or retrieval quality")
    kinds = parser.add_subparsers(dest="benchmark", required=True)
    for name in ("mmlu", "gpqa"):
        p = kinds.add_parser(name, help=f"{name.upper()}: closed-book against RAG variants on one reader")
        add_store_args(p)
        add_encoder_args(p)
        p.add_argument("--data", help="MMLU folder or hub id (default cais/mmlu from the hub)" if name == "mmlu"
                       else "the official GPQA dataset.zip, or its URL (downloaded once into the cache; "
                       f"'official': {GPQA_RELEASE_URL}); default: the clone's data/gpqa/dataset.zip")
        if name == "gpqa":
            p.add_argument("--subset", default="diamond", choices=["main", "diamond", "extended"])
        else:
            p.add_argument("--split", default="test")
        p.add_argument("--retriever", default="dense", choices=["dense", "bm25"],
                       help="dense: the collection's encoder; bm25: bm25s over the collection's documents")
        p.add_argument("--reader", required=True, help="openai:MODEL (with --base-url) or hf:PATH_OR_ID")
        p.add_argument("--rewriter", help="LLM spec for the query rewriter (default: the reader)")
        p.add_argument("--reranker", help="LLM spec for the reranker (default: the reader)")
        p.add_argument("--base-url", help="OpenAI-compatible server URL (else $OPENAI_BASE_URL)")
        add_llm_timeout_arg(p)
        p.add_argument("--conditions", default=",".join(ALL_CONDITIONS),
                       help=f"comma-separated, from {', '.join(ALL_CONDITIONS)}")
        p.add_argument("--subjects", help="comma-separated subjects (MMLU) or domains (GPQA)")
        p.add_argument("--sample", type=int, help="questions overall (seeded)")
        p.add_argument("--per-subject", type=int, help="questions per subject (seeded)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--top-k", type=int, help="passages shown to the reader (default MMLU 3, GPQA 5)")
        p.add_argument("--candidates", type=int, default=RERANK_CANDIDATES,
                       help=f"retrieved for the reranker (default {RERANK_CANDIDATES}, as ReasonIR)")
        p.add_argument("--task", help="BRIGHT task instruction for the retriever's queries")
        p.add_argument("--max-tokens", type=int, help="reader's generation budget")
        p.add_argument("--rewrite-tokens", type=int, default=512, help="rewriter's generation budget")
        p.add_argument("--temperature", type=float, help="reader temperature (default: ReasonIR's)")
        p.add_argument("--concurrency", type=int, default=4, help="reader prompts in flight")
        p.add_argument("--out", default="eval-out", help="folder for the report and the journal")
        p.add_argument("--journal", help="resumable journal file (default OUT/journal.sqlite)")
        p.add_argument("--no-progress", action="store_true")
        _add_protocol(p)
        p.set_defaults(func=cmd_eval_reader)
    from reasonir_rag.cli import eval_retrieval

    eval_retrieval.register(kinds)  # eval retrieval: its own module


def _add_protocol(parser: argparse.ArgumentParser) -> None:
    from reasonir_rag.eval.protocol import PROTOCOLS

    parser.add_argument("--protocol", default="default", choices=sorted(PROTOCOLS),
                        help="default: the project's choices; paper: ReasonIR's evaluation code exactly "
                             "(README: Differences from ReasonIR)")


def _llm(spec: str | None, fallback: Any, args: argparse.Namespace) -> Any:
    from reasonir_rag.llm import load_llm

    if spec is None:
        return fallback
    return load_llm(spec, base_url=args.base_url, device=args.device, timeout=args.llm_timeout)


def _retriever(args: argparse.Namespace, protocol: Any) -> tuple[Any, dict[str, Any]]:
    """The dense ChromaStore (or BM25 over its documents) and the corpus fingerprint for the run record; the
    encoder embeds what the protocol's RAG runs embedded (``paper``: 512 tokens, fp16 on CUDA)."""
    from reasonir_rag._common.devices import pick_device
    from reasonir_rag.eval.report import corpus_fingerprint
    from reasonir_rag.index.store import ChromaStore

    overrides: dict[str, Any] = {}
    if protocol.retrieval_max_length:
        overrides["max_length"] = protocol.retrieval_max_length
    if protocol.retrieval_dtype:
        if pick_device(args.device).startswith("cuda"):
            overrides["dtype"] = protocol.retrieval_dtype
        else:
            logger.info("protocol %s: the encoder stays float32 on CPU (ReasonIR's runs used %s on GPUs)",
                        protocol.name, protocol.retrieval_dtype)
    encoder = load_encoder(encoder_name(args, must_exist=True), args, **overrides)
    store = ChromaStore(args.collection, encoder=encoder, connection=connection(args), create=False)
    if store.count() == 0:
        raise InvalidInputError(f"collection {args.collection!r} holds no documents: RAG would read nothing "
                                "(index documents first, or check --collection and --path)")
    if args.retriever == "bm25":
        from reasonir_rag.eval.bm25 import BM25Retriever

        documents = list(store.iter_documents())
        return BM25Retriever(documents), {"collection": args.collection, **corpus_fingerprint(documents)}
    return store, {"collection": args.collection, **store.content_fingerprint()}


def gpqa_source(data: str | None) -> Path:
    """``--data`` for GPQA: a file, a URL fetched into the cache (``official``: the public release), or, when
    absent, the copy this clone ships."""
    from reasonir_rag.eval.gpqa import fetch_gpqa
    from reasonir_rag.sample_data import gpqa_zip

    if data is None:
        return gpqa_zip()
    if data == "official":
        return fetch_gpqa()
    if "://" in data:
        return fetch_gpqa(data)
    return Path(data)


def cmd_eval_reader(args: argparse.Namespace) -> int:
    from reasonir_rag.eval.gpqa import load_gpqa
    from reasonir_rag.eval.journal import Journal
    from reasonir_rag.eval.mmlu import load_mmlu
    from reasonir_rag.eval.protocol import protocol_for
    from reasonir_rag.eval.report import render_markdown
    from reasonir_rag.eval.runner import CLOSED_BOOK, CONDITIONS, EvalSettings, RAGEvaluator
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    subjects = [s.strip() for s in args.subjects.split(",")] if args.subjects else None
    select = {"subjects": subjects, "sample": args.sample, "per_subject": args.per_subject, "seed": args.seed}
    if args.benchmark == "gpqa":
        dataset = load_gpqa(gpqa_source(args.data), args.subset, **select)
    else:
        dataset = load_mmlu(args.data, split=args.split, **select)
    settings = EvalSettings(conditions=conditions, top_k=args.top_k, candidates=args.candidates, task=args.task,
                            max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                            concurrency=args.concurrency, show_progress=not args.no_progress,
                            protocol=args.protocol)
    protocol = protocol_for(args.protocol)
    searches = any(c != CLOSED_BOOK for c in conditions)
    if searches:  # a mistyped --path or --collection fails here, before any model loads, and creates nothing
        check_local_path(args)
        encoder_name(args, must_exist=True)
    reader = _llm(args.reader, None, args)
    retriever, corpus = (None, None)
    if searches:
        retriever, corpus = _retriever(args, protocol)
    rewriter = reranker = None
    if any(CONDITIONS.get(c, (False, False))[0] for c in conditions):
        encoder = getattr(retriever, "encoder", None)
        rewriter = QueryRewriter(_llm(args.rewriter, reader, args), max_tokens=args.rewrite_tokens,
                                 encoder=encoder, task=args.task, **protocol.rewriter)
    if any(CONDITIONS.get(c, (False, False))[1] for c in conditions):
        reranker = QwenReranker(_llm(args.reranker, reader, args), task=args.task, **protocol.reranker)
    out = Path(args.out)
    journal = Journal(args.journal or out / "journal.sqlite")
    evaluator = RAGEvaluator(reader=reader, journal=journal, retriever=retriever, rewriter=rewriter,
                             reranker=reranker, settings=settings)
    report = evaluator.report(dataset, args.benchmark, corpus=corpus, out_dir=out)
    print(render_markdown(report))
    calls = ", ".join(f"{stage} {c['new']} new / {c['journaled']} from the journal"
                      for stage, c in evaluator.calls.items())
    print(f"\ncalls: {calls or 'none'}")
    print(f"report: {', '.join(report['files'].values())}")
    return 0

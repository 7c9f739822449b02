"""`reasonir-rag demo`: the whole pipeline on the shipped OpenStax passages and MMLU, printed stage by stage."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from reasonir_rag.cli.common import add_llm_timeout_arg, snippet

# `demo --smoke`: every stage (index, rewrite, retrieve, rerank, read, evaluate) in about a minute on 2 cores
SMOKE = {"passages": 300, "examples": 2, "limit": 2}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo", parents=[common], help="the whole pipeline on OpenStax + MMLU: index, rewrite, rerank, read, evaluate"
    )
    p.add_argument(
        "--profile",
        default="offline",
        choices=["offline", "reasonir"],
        help="offline: MiniLM + SmolLM2-135M stand-ins on CPU; reasonir: ReasonIR-8B + Qwen2.5-7B-Instruct",
    )
    p.add_argument("--data", default=None, help="folder of OpenStax *.jsonl (default: $REASONIR_DATA/openstax)")
    p.add_argument("--mmlu", default=None, help="MMLU folder (default: $REASONIR_DATA/mmlu)")
    p.add_argument("--out", default=".demo", help="index, journal and report folder (default: .demo)")
    p.add_argument("--encoder", default=None, help="encoder instead of the profile's ($REASONIR_DEMO_ENCODER)")
    p.add_argument("--llm", default=None, help="LLM id or folder, or the served name ($REASONIR_DEMO_LLM)")
    p.add_argument(
        "--llm-url", default=None, help="OpenAI-compatible server for the LLM, key from $OPENAI_API_KEY "
        "($REASONIR_DEMO_LLM_URL)"
    )
    add_llm_timeout_arg(p)
    p.add_argument("--device", default=None, help="default: cpu (offline), cuda when available (reasonir)")
    p.add_argument("--max-length", type=int, default=None, help="tokens embedded per passage (offline: 128)")
    p.add_argument("--examples", type=int, default=None, help="MMLU questions shown through the pipeline (max 3; "
                   "default 3)")
    p.add_argument("--limit", type=int, default=None, help="MMLU questions evaluated (default 40; 0: none)")
    p.add_argument("--conditions", default=None, help="comma-separated (default: closed-book,rag offline)")
    p.add_argument("-k", type=int, default=None, help="passages given to the reader (default 3)")
    p.add_argument("--candidates", type=int, default=None, help="retrieved for the reranker (offline: 10)")
    p.add_argument("--rewrite-tokens", type=int, default=None, help="rewriter's budget (offline: 48)")
    p.add_argument("--reader-tokens", type=int, default=None, help="reader's budget (offline: 32)")
    p.add_argument("--passages", type=int, default=None, help="index at most N passages, spread over the books")
    p.add_argument("--smoke", action="store_true", help="every stage at a small size: "
                   + ", ".join(f"--{k} {v}" for k, v in SMOKE.items()))
    p.add_argument("--index-only", action="store_true", help="build or update the index, then stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


_PAPER = "ReasonIR-8B + Qwen2.5-7B-Instruct: MMLU +6.4% relative to closed-book in the paper"


def _demo_models(result: Any) -> None:
    from reasonir_rag.demo.config import PAPER_ENCODER, PAPER_LLM

    c, idx = result.config, result.index
    stand_in = f" as an offline stand-in for {PAPER_ENCODER}" if c.stand_ins else ""
    print(f"encoder:    {c.encoder_label}{stand_in}")
    print(f"            passages embedded up to {idx.max_length} tokens (longer ones truncated)")
    llm_stand_in = f" as an offline stand-in for {PAPER_LLM}" if c.stand_ins else ""
    print(f"LLM:        {c.llm_label}{llm_stand_in}")
    print("            as rewriter, reranker (logits mode) and reader")
    if c.stand_ins:
        print("            Small stand-ins show the mechanics only: SmolLM2-135M answers MMLU near chance (25%),")
        print("            so the evaluation below cannot show the paper's gain (ReasonIR-8B + Qwen2.5-7B-Instruct:")
        print("            MMLU +6.4% relative to closed-book). `make demo PROFILE=reasonir` runs the real models.")


def _demo_index(result: Any) -> None:
    idx = result.index
    add = idx.add
    print(f"passages:   {idx.load.records} from {idx.data_dir} ({idx.load.bad_records} bad records)")
    print(
        f"index:      collection {idx.collection} in {idx.chroma_path}: {idx.count} records; "
        f"{add.added} encoded now, {add.unchanged} unchanged (reused)"
    )


def _demo_hits(label: str, hits: list[Any], *, rerank: bool) -> None:
    print(f"   {label}")
    for rank, hit in enumerate(hits, start=1):
        meta = hit.metadata
        where = " › ".join(str(meta[k]) for k in ("book", "section") if meta.get(k))
        extra = f" (rerank {meta['rerank_score']:.2f}/5, retrieval {meta['retrieval_score']:.3f})" if rerank else ""
        print(f"     {rank}. {hit.score:.3f}{extra}  {where}  ({hit.id})")
        print(f"        {snippet(hit.text, 160)}")


def _demo_showcase(result: Any) -> None:
    c = result.config
    print(f"\n== pipeline on {len(result.showcase)} MMLU questions: rewrite -> retrieve -> rerank -> read ==")
    for n, item in enumerate(result.showcase, start=1):
        print(f"\nQ{n} [{item.subject}] {item.question}")
        print("   " + "  ".join(f"{letter}. {choice}" for letter, choice in zip("ABCD", item.choices, strict=False)))
        note = f" (rewrite failed, question used: {item.rewrite_error})" if item.rewrite_error else ""
        print(f"   rewrite{note}: {snippet(item.rewrite, 300)}")
        _demo_hits(f"top {len(item.before)} retrieved (before reranking):", item.before, rerank=False)
        _demo_hits(f"top {len(item.after)} after reranking {c.candidates} candidates:", item.after, rerank=True)
        verdict = "correct" if item.predicted == item.answer else "wrong"
        print(f"   reader: {snippet(item.reader_output, 300) or '(no text)'}")
        print(f"   answer: {item.predicted or 'none extracted'} (correct: {item.answer}) -> {verdict}")


def _demo_eval(result: Any) -> None:
    from reasonir_rag.eval.report import render_markdown

    report = result.report
    n = report["conditions"][0]["n"]
    print(f"\n== closed-book vs RAG on {n} MMLU questions (subjects the corpus covers) ==\n")
    tables = render_markdown(report).split("\n## Run")[0].strip()
    print(tables.split("\n", 2)[2] if tables.startswith("# ") else tables)
    if result.config.stand_ins:
        print(f"\n(a near-chance reader: these numbers show the mechanics, not the paper's gain; {_PAPER})")
    print(f"\nreport:     {', '.join(result.report_files.values())}")


def cmd_demo(args: argparse.Namespace) -> int:
    from reasonir_rag.demo.config import resolve_config
    from reasonir_rag.demo.run import run_demo
    from reasonir_rag.sample_data import OPENSTAX_ATTRIBUTION

    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip()) if args.conditions else None
    if args.smoke:  # every stage at a small size; explicit options still win
        args.passages = args.passages or SMOKE["passages"]
        args.limit = SMOKE["limit"] if args.limit is None else args.limit
        args.examples = SMOKE["examples"] if args.examples is None else args.examples
    config = resolve_config(
        args.profile, encoder=args.encoder, llm=args.llm, llm_url=args.llm_url, llm_timeout=args.llm_timeout,
        device=args.device,
        max_length=args.max_length, k=args.k, candidates=args.candidates, rewrite_tokens=args.rewrite_tokens,
        reader_tokens=args.reader_tokens, eval_questions=0 if args.index_only else args.limit,
        conditions=conditions, passages=args.passages,
    )
    encoder_log = logging.getLogger("reasonir_rag.encoding.encoder")
    level = encoder_log.level
    if not args.verbose:  # truncating passages to --max-length is the demo's documented choice, printed below
        encoder_log.setLevel(logging.ERROR)
    print(f"reasonir-rag demo, profile {config.profile}", flush=True)
    def index_and_models(result: Any) -> None:
        _demo_index(result)
        _demo_models(result)

    printers = {"index": index_and_models, "showcase": _demo_showcase, "eval": _demo_eval}

    def on_stage(name: str, result: Any) -> None:  # each section as soon as it is ready, even through a pipe
        printers.get(name, lambda _r: None)(result)
        sys.stdout.flush()

    start = time.perf_counter()
    try:
        result = run_demo(
            config=config, data_dir=args.data, mmlu_dir=args.mmlu, out_dir=args.out,
            showcase_limit=0 if args.index_only else args.examples,
            show_progress=False if args.no_progress else None,
            on_stage=on_stage,
            stop_after_index=args.index_only,
        )
    finally:
        encoder_log.setLevel(level)
    total = time.perf_counter() - start
    calls = result.calls
    timings = ", ".join(f"{name} {secs:.1f} s" for name, secs in result.seconds.items())
    cpu = ", ".join(f"{name} {secs:.1f} s" for name, secs in result.cpu_seconds.items())
    print(f"\ntime:       {total:.1f} s ({timings})")
    print(f"CPU time:   {cpu} (this process, all threads)")
    if not args.index_only:
        print(f"LLM calls:  {calls.generate} generated, {calls.score} scored now; journal {result.journal_path}: "
              f"{result.journal_entries} results, {result.journal_added} added by this run")
    print(OPENSTAX_ATTRIBUTION)
    return 0

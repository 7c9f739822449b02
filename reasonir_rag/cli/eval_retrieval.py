"""`reasonir-rag eval retrieval`: rankings on a BEIR or BRIGHT-layout collection, their report and query-length
scaling (``--rewrite-budgets``)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger(__name__)

_VERSIONS = ("numpy", "torch", "transformers", "sentence-transformers", "bm25s", "PyStemmer", "chromadb", "openai")


def register(kinds: Any) -> None:
    """The ``retrieval`` subcommand of ``eval``."""
    from reasonir_rag.cli.common import add_llm_timeout_arg

    p = kinds.add_parser("retrieval", help="nDCG@10, recall@10/100 and MRR on a BEIR or BRIGHT collection")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)")
    source.add_argument("--bright", help="BRIGHT folder (needs --task); a synthesized one (manifest.json) too")
    p.add_argument("--split", default="test")
    p.add_argument("--task", help="BRIGHT task (its instruction is applied); with --beir, whose instruction to use")
    p.add_argument("--instruction", help="query instruction for --beir (default: the encoder's generic one)")
    p.add_argument("--long-documents", action="store_true", help="BRIGHT's long-document setting")
    p.add_argument("--reasoning", help="BRIGHT reasoning queries, e.g. gpt4")
    p.add_argument("--retriever", action="append", choices=["dense", "bm25"],
                   help="repeatable; default dense (with --rewrite-budgets: bm25 and dense)")
    p.add_argument("--bm25", choices=["bright", "bright-script", "bm25s"],
                   help="with --retriever bm25, its configuration: bright (BRIGHT's Lucene recipe as Pyserini "
                   "reproduces it: k1 0.9, b 0.4, Porter stemming, Lucene's English stopwords), bright-script (the "
                   "same analysis scored as BRIGHT's own gensim script: the query weighted by BM25 too) or bm25s "
                   "(bm25s' defaults: k1 1.5, b 0.75, no stemming); default: bright with --bright, bm25s with --beir")
    p.add_argument("--encoder", action="append",
                   help="reasonir | minilm | a model id or folder; repeatable, one dense system each "
                   "(default reasonir)")
    p.add_argument("--device", default=None)
    p.add_argument("--cache", default=None, help="embedding cache folder")
    p.add_argument("--queries", type=int, help="evaluate a seeded sample of this many queries")
    p.add_argument("--other-docs", type=int, default=None, help="with --queries: non-relevant docs kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rewrite-budgets",
                   help="query-length scaling: comma-separated rewrite budgets in tokens, 0 = the original query "
                   "(e.g. 0,128,512,1024,2048); needs --llm and --out")
    p.add_argument("--llm", help="the rewriter's LLM: openai:MODEL (with --base-url) or hf:PATH_OR_ID")
    p.add_argument("--base-url", help="OpenAI-compatible server URL (else $OPENAI_BASE_URL)")
    p.add_argument("--tokenizer", help="local tokenizer of a served --llm (exact token counts and cuts)")
    add_llm_timeout_arg(p)
    p.add_argument("--out", help="folder for report.json/.md/.png, run.<system>.trec, per_query.jsonl, the journal")
    p.add_argument("--journal", help="resumable journal of the rewrites (default OUT/journal.sqlite)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    from reasonir_rag.cli.eval import _add_protocol

    _add_protocol(p)
    p.set_defaults(func=cmd_eval_retrieval)


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _short(name: str) -> str:
    return Path(name).name if ("/" in name or "\\" in name) else name


def _systems(args: argparse.Namespace, collection: Any, scaling: bool) -> dict[str, Any]:
    """System name -> retriever: ``bm25`` and ``dense:<encoder>`` for each ``--encoder``."""
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    kinds = args.retriever or (["bm25", "dense"] if scaling else ["dense"])
    if args.bm25 and "bm25" not in kinds:
        raise InvalidInputError("--bm25 picks the BM25 configuration: it needs --retriever bm25")
    if args.encoder and "dense" not in kinds:
        raise InvalidInputError("--encoder names a dense retriever: it needs --retriever dense (or no --retriever)")
    systems: dict[str, Any] = {}
    if "bm25" in kinds:
        from reasonir_rag.eval.bm25 import BM25Retriever

        config = args.bm25 or ("bright" if args.bright else "bm25s")
        systems["bm25"] = BM25Retriever(list(collection.corpus.values()), config=config)
    if "dense" in kinds:
        from reasonir_rag.eval.protocol import protocol_for

        max_length = protocol_for(args.protocol).bright_max_length if args.bright else None
        for name in dict.fromkeys(args.encoder or ["reasonir"]):
            systems[f"dense:{_short(name)}"] = ReasonIREncoder.from_pretrained(
                name, device=args.device, cache=args.cache, max_length=max_length)
    return systems


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from reasonir_rag.eval.ir_data import load_beir, load_bright, subsample
    from reasonir_rag.eval.retrieval import evaluate_retrieval
    from reasonir_rag.eval.retrieval_report import (
        build_retrieval_report,
        caveats_for,
        synthesis_manifest,
        write_retrieval_report,
    )

    if args.bright and not args.task:
        raise InvalidInputError("--bright needs --task (one of BRIGHT's 12 tasks, or a synthesized set's task)")
    for option, value in (("--queries", args.queries), ("--other-docs", args.other_docs)):
        if value is not None and value < (1 if option == "--queries" else 0):  # checked before any model loads
            raise InvalidInputError(f"{option} must be >= {1 if option == '--queries' else 0}, got {value} "
                                    "(leave --queries out to evaluate every query)")
    if args.other_docs is not None and args.queries is None:
        raise InvalidInputError("--other-docs applies to a --queries sample; give --queries too")
    budgets = None
    if args.rewrite_budgets is not None:
        from reasonir_rag.eval.scaling import parse_budgets

        budgets = parse_budgets(args.rewrite_budgets)
        if any(b > 0 for b in budgets) and not args.llm:
            raise InvalidInputError("--rewrite-budgets above 0 need --llm (the rewriter's LLM)")
        if not args.out:
            raise InvalidInputError("--rewrite-budgets needs --out (the journal and the report live there)")
    elif args.llm:
        raise InvalidInputError("--llm is the rewriter for --rewrite-budgets; give the budgets too")
    collection = (load_beir(args.beir, args.split) if args.beir else
                  load_bright(args.bright, args.task, long_documents=args.long_documents, reasoning=args.reasoning))
    manifest = synthesis_manifest(args.bright) if args.bright else None
    if args.queries is not None:
        collection = subsample(collection, n_queries=args.queries, n_other_docs=args.other_docs or 1000,
                               seed=args.seed)
    systems = _systems(args, collection, scaling=budgets is not None)
    instruction = args.instruction
    if args.beir and args.task and instruction is None:
        from reasonir_rag.encoding.instructions import resolve_task

        instruction = resolve_task(args.task)
    extra: dict[str, Any] = {}
    pairs = None
    llm = None
    if budgets is not None:
        results, table, pairs, llm = _scaling(args, collection, systems, budgets, instruction)
        extra["scaling"] = table
    else:
        results = {name: evaluate_retrieval(collection, r, instruction=instruction) for name, r in systems.items()}
    for caveat in caveats_for(manifest):
        logger.warning("%s", caveat)
    report = None
    if args.out:
        report = build_retrieval_report(results, collection=collection.describe(), pairs=pairs,
                                        synthesized=manifest, run_info=_run_info(args, systems, llm), extra=extra)
        write_retrieval_report(report, results, args.out)
    _print(args, collection, systems, results, manifest, report)
    return 0


def _scaling(args: argparse.Namespace, collection: Any, systems: dict[str, Any], budgets: list[int],
             instruction: str | None) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, str]], Any]:
    from reasonir_rag.eval.journal import Journal
    from reasonir_rag.eval.protocol import protocol_for
    from reasonir_rag.eval.scaling import evaluate_scaling, rewrite_at_budgets, scaling_pairs
    from reasonir_rag.llm import load_llm

    llm = load_llm(args.llm, base_url=args.base_url, device=args.device, tokenizer=args.tokenizer,
                   timeout=args.llm_timeout) if args.llm else None
    journal = Journal(args.journal or Path(args.out) / "journal.sqlite")
    try:
        queries = rewrite_at_budgets(collection, budgets, llm=llm, journal=journal,
                                     rewriter_settings=protocol_for(args.protocol).rewriter)
    finally:
        journal.close()
    count: Callable[[str], int] | None = None
    if llm is not None:
        count, label = llm.count_tokens, f"the rewriter LLM's tokenizer ({llm.model_name})"
    else:
        dense = next((r for r in systems.values() if hasattr(r, "count_tokens")), None)
        count = dense.count_tokens if dense is not None else None
        label = "the first encoder's tokenizer" if dense is not None else ""
    result = evaluate_scaling(collection, systems, queries, count_tokens=count, tokens_counted_with=label,
                              instruction=instruction, seed=args.seed)
    return result.results, result.table, scaling_pairs(result), llm


def _run_info(args: argparse.Namespace, systems: dict[str, Any], llm: Any) -> dict[str, Any]:
    """What reproduces the run: the options, versions, every model's fingerprint, the protocol and the seeds."""
    from dataclasses import asdict

    from reasonir_rag.eval.protocol import protocol_for
    from reasonir_rag.eval.report import run_record
    from reasonir_rag.eval.retrieval import _describe

    options = {k: v for k, v in vars(args).items() if k != "func"}
    protocol = asdict(protocol_for(args.protocol))
    return run_record(seeds={"sample": args.seed, "bootstrap": 0, "randomisation": 0,
                             "rewrite": protocol["rewriter"].get("seed", 0)},
                      command=["reasonir-rag", "eval", "retrieval", *_argv(options)], options=options,
                      versions=_versions(), systems={n: _describe(r) for n, r in systems.items()},
                      rewriter_llm=None if llm is None else {"model": llm.model_name, "repr": repr(llm)},
                      protocol=protocol)


def _argv(options: dict[str, Any]) -> list[str]:
    """The options back as command-line arguments (the ones that were set)."""
    out: list[str] = []
    for key, value in options.items():
        if key in ("command", "benchmark", "verbose") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def _print(args: argparse.Namespace, collection: Any, systems: dict[str, Any], results: dict[str, Any],
           manifest: Any, report: dict[str, Any] | None) -> None:
    from reasonir_rag.eval.retrieval_report import caveats_for

    if args.json:
        out: dict[str, Any] = {"collection": collection.describe(), "protocol": args.protocol,
                               "synthesized": manifest is not None,
                               "caveats": caveats_for(manifest),
                               "systems": {n: {"retriever": r.settings["retriever"], "metrics": r.scores.mean}
                                           for n, r in results.items()}}
        if len(results) == 1:
            only = next(iter(results.values()))
            out.update(retriever=only.settings["retriever"], metrics=only.scores.mean)
        if report is not None:
            out["files"] = report["files"]
        print(json.dumps(out, indent=2))
        return
    if manifest is not None:
        print("caveats (synthesized collection):\n" + "\n".join(f"  - {c}" for c in caveats_for(manifest)))
    n = len(next(iter(results.values())).scores.per_query) if results else 0
    print(f"{collection.name}: {n} queries (protocol {args.protocol})")
    for name, result in results.items():
        print(f"{name}:")
        bm25 = systems.get(name.split("@")[0])
        if name.startswith("bm25") and bm25 is not None:
            c = bm25.config
            print(f"  retriever: BM25 {c.name!r} ({c.method}, k1={c.k1}, b={c.b}, stemmer={c.stemmer})")
        for metric, value in result.scores.mean.items():
            print(f"  {metric:<14}{value:.4f}")
    if report is not None:
        print(f"\nreport: {', '.join(report['files'].values())}")

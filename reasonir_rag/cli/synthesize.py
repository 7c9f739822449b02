"""`reasonir-rag synthesize CORPUS --llm SPEC --out DIR --task TASK`: an evaluation set from your documents."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    from reasonir_rag.cli.common import add_llm_timeout_arg
    from reasonir_rag.encoding.instructions import BRIGHT_TASKS
    from reasonir_rag.synth.seeds import EDU_CLASSIFIER

    p = subparsers.add_parser(
        "synthesize", parents=[common],
        help="build a BRIGHT-format evaluation set from a corpus (ReasonIR's hard-query recipe, checked)",
        description="Passages -> exact dedup -> seeds by educational value -> one LLM query per seed -> copy, "
        "pointer and duplicate checks -> optional hard negatives. The output folder reads with "
        "`reasonir-rag eval retrieval --bright OUT --task TASK`; rerunning the same command resumes.")
    p.add_argument("corpus", nargs="+", help="files or folders (.jsonl, .jsonl.gz, .txt, .md)")
    p.add_argument("--llm", required=True, help="openai:MODEL (with --base-url) or hf:PATH_OR_ID")
    p.add_argument("--base-url", help="OpenAI-compatible server URL (else $OPENAI_BASE_URL)")
    add_llm_timeout_arg(p)
    p.add_argument("--out", required=True, help="output folder (BRIGHT layout, manifest, journal)")
    p.add_argument("--task", required=True, choices=BRIGHT_TASKS, metavar="TASK",
                   help="names the files and picks the query instruction eval retrieval applies: the BRIGHT task "
                   f"closest to your corpus ({', '.join(BRIGHT_TASKS)})")
    p.add_argument("--seeds", type=int, default=100, help="seed passages (one query each); default 100")
    p.add_argument("--classifier", default=EDU_CLASSIFIER,
                   help=f"educational-value model (hub id or folder; default {EDU_CLASSIFIER}); 'length': "
                   "length-only selection (also the logged fallback when the model cannot be loaded)")
    p.add_argument("--min-words", type=int, default=50, help="length selection: fewest words in a seed")
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument("--chunk-tokens", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=1536, help="generation budget per call (the recipe's 1536)")
    p.add_argument("--temperature", type=float, default=0.0, help="first attempt (the recipe: greedy)")
    p.add_argument("--attempts", type=int, default=3,
                   help="calls per seed until its reply has usable JSON and a query usable for its passage")
    p.add_argument("--no-started-retries", action="store_true",
                   help="retries send the JSON-only prompt without starting the reply (for an API that refuses "
                   "an assistant message to continue)")
    p.add_argument("--concurrency", type=int, default=4, help="LLM calls in flight")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (retries use seed + attempt)")
    p.add_argument("--copy-threshold", type=float, default=0.5,
                   help="reject a query when more than this share of its word 5-grams occur in its passage")
    p.add_argument("--duplicate-threshold", type=float, default=0.6,
                   help="reject a query this similar (word-trigram Jaccard) to one kept before it")
    p.add_argument("--no-bm25-negatives", action="store_true", help="skip BM25 negatives (rank >= 21)")
    p.add_argument("--llm-negatives", action="store_true", help="also ask the LLM for a hard negative per query")
    p.add_argument("--journal", help="resumable journal file (default OUT/journal.sqlite)")
    p.add_argument("--device", default=None, help="for hf: LLMs and the classifier")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_synthesize)


def cmd_synthesize(args: argparse.Namespace) -> int:
    from reasonir_rag.llm import load_llm
    from reasonir_rag.synth import CallSettings, FilterSettings, SynthesisSettings, synthesize

    settings = SynthesisSettings(
        task=args.task, seeds=args.seeds, classifier=args.classifier, min_words=args.min_words,
        chunk_tokens=args.chunk_tokens, text_field=args.text_field, device=args.device,
        calls=CallSettings(max_tokens=args.max_tokens, temperature=args.temperature, attempts=args.attempts,
                           concurrency=args.concurrency, seed=args.seed,
                           retry_reply_start=not args.no_started_retries),
        filters=FilterSettings(max_copy_overlap=args.copy_threshold, max_duplicate_similarity=args.duplicate_threshold),
        bm25_negatives=not args.no_bm25_negatives, llm_negatives=args.llm_negatives,
        show_progress=not args.no_progress)
    llm = load_llm(args.llm, base_url=args.base_url, device=args.device, timeout=args.llm_timeout)
    result = synthesize(args.corpus, llm, args.out, settings, journal=args.journal)
    counts = result.manifest["counts"]
    print(f"{result.examples} queries kept from {counts['seeds']} seeds ({result.documents} documents) in "
          f"{result.out}")
    print(json.dumps({k: counts[k] for k in ("seeds_without_json", "rejected", "bm25_negatives", "llm_negatives",
                                             "llm_calls")}))
    print(f"next: reasonir-rag eval retrieval --bright {result.out} --task {args.task}")
    return 0

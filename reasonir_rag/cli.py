"""reasonir-rag: ReasonIR retrieval from the command line (index, search, demo; rewrite, rerank, eval).

Results go to stdout, logs to stderr (``-v`` for more). Expected failures (a missing collection or path,
an encoder that does not match the index, bad input) print one line on stderr and exit with code 2;
``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reasonir_rag import llm_cli
from reasonir_rag.eval import cli as eval_cli

logger = logging.getLogger("reasonir_rag.cli")

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_KEY_FIELDS = ("title", "book", "chapter", "section", "source", "source_id")
# `demo --smoke`: every stage (index, rewrite, retrieve, rerank, read, evaluate) in about a minute on 2 cores
SMOKE = {"passages": 300, "examples": 2, "limit": 2}
_INDEX_GROUP = 2048  # documents read per add(): bounded memory, and a killed run resumes at most this far back


# ---------------------------------------------------------------------- shared helpers
def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", required=True, help="Chroma collection name (3-512 chars of [a-zA-Z0-9._-])")
    where = p.add_argument_group(
        "where the index lives (default: embedded folder $REASONIR_CHROMA_PATH or ./reasonir-chroma)"
    )
    where.add_argument("--path", help="embedded Chroma folder")
    where.add_argument("--host", help="Chroma server host (token from $CHROMA_AUTH_TOKEN)")
    where.add_argument("--port", type=int, help="Chroma server port")
    where.add_argument("--ssl", action="store_true", help="use https for the Chroma server")


def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder",
        default=None,
        help="reasonir | minilm | a model id or folder (default: the encoder recorded in an existing "
        "collection, else reasonir)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--cache", default=None, help="embedding cache folder: re-encoding unchanged text is free")


def _client_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.host is None and args.port is None:
        return {"path": args.path}
    if args.path is not None:
        raise ValueError("give either --path (embedded) or --host/--port (server), not both")
    return {"host": args.host, "port": args.port, "ssl": args.ssl}


def _encoder_name(args: argparse.Namespace, *, must_exist: bool) -> str:
    """The --encoder value, else the one recorded in the collection, else reasonir."""
    from reasonir_rag.store import CollectionNotFoundError, stored_fingerprint

    if args.encoder:
        return args.encoder
    try:
        fingerprint = stored_fingerprint(args.collection, **_client_args(args))
    except CollectionNotFoundError:
        if must_exist:
            raise
        return "reasonir"
    if not fingerprint:
        return "reasonir"
    model = str(fingerprint.get("model", "reasonir"))
    name = "minilm" if model == MINILM_NAME else model
    logger.info("using the encoder recorded in collection %r: %s", args.collection, name)
    return name


def _load_encoder(name: str, args: argparse.Namespace) -> Any:
    from reasonir_rag.encoder import ReasonIREncoder

    kwargs: dict[str, Any] = {"device": args.device, "cache": args.cache}
    if getattr(args, "no_progress", False):
        kwargs["show_progress"] = False
    if name in ("reasonir", "minilm"):
        return ReasonIREncoder.from_pretrained(preset=name, **kwargs)
    return ReasonIREncoder.from_pretrained(name, **kwargs)


def _check_local_path(args: argparse.Namespace) -> None:
    """Searching must not create an empty database as a side effect of a typo."""
    import os

    if args.host is None and args.port is None:
        path = Path(args.path or os.environ.get("REASONIR_CHROMA_PATH", "./reasonir-chroma")).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"no Chroma database at {path} (index documents first, or pass --path)")


def _key_metadata(meta: dict[str, Any], doc_id: str = "") -> str:
    shown = [str(meta[k]) for k in _KEY_FIELDS if meta.get(k) not in (None, "", doc_id)]
    return " · ".join(shown[:3])


def _snippet(text: str, width: int = 240) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" …")


# ---------------------------------------------------------------------- index
def _batches(docs: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_index(args: argparse.Namespace) -> int:
    from reasonir_rag.chunking import chunk_documents
    from reasonir_rag.loaders import LoadReport, load_documents
    from reasonir_rag.store import ChromaStore

    if (args.chunk_tokens is not None and args.chunk_tokens < 0) or args.chunk_overlap < 0:
        raise ValueError("--chunk-tokens and --chunk-overlap must be >= 0")
    report = LoadReport()
    docs = load_documents(args.paths, text_field=args.text_field, id_field=args.id_field, report=report)
    encoder = _load_encoder(_encoder_name(args, must_exist=False), args)
    store = ChromaStore(args.collection, encoder=encoder, show_progress=False, **_client_args(args))
    chunk_tokens, overlap = args.chunk_tokens, args.chunk_overlap
    budget = encoder.text_budget(encoder.document_prefix)
    if chunk_tokens is None:  # the default: 512, or what the encoder embeds when that is less (MiniLM: 254)
        chunk_tokens = min(512, budget)
    if chunk_tokens:
        if chunk_tokens > budget:
            logger.warning(
                "--chunk-tokens %d exceeds what the encoder embeds (%d tokens); using %d", chunk_tokens, budget, budget
            )
            chunk_tokens = budget
        if overlap >= chunk_tokens:
            overlap = chunk_tokens // 8
            logger.warning("--chunk-overlap must be below --chunk-tokens; using %d", overlap)
    totals = {"chunks": 0, "added": 0, "unchanged": 0, "metadata_updated": 0, "invalid": 0}
    from tqdm import tqdm

    start = time.perf_counter()
    with tqdm(desc=f"indexing into {args.collection}", unit="doc", disable=args.no_progress, file=sys.stderr) as bar:
        for group in _batches(docs, _INDEX_GROUP):
            pieces = (
                chunk_documents(group, tokenizer=encoder.tokenizer, chunk_tokens=chunk_tokens, overlap=overlap)
                if chunk_tokens
                else group
            )
            store.add(pieces, show_progress=False)
            stats = store.last_add
            totals["chunks"] += len(pieces)
            for key in ("added", "unchanged", "metadata_updated", "invalid"):
                totals[key] += getattr(stats, key)
            bar.update(len(group))
    elapsed = time.perf_counter() - start
    print(f"documents read:    {report.records} from {report.files} file(s)")
    print(
        f"bad records:       {report.bad_records}"
        + (f" (first: {report.skipped[0][0]}: {report.skipped[0][1]})" if report.skipped else "")
    )
    print(f"chunks:            {totals['chunks']}" + ("" if chunk_tokens else " (chunking off)"))
    print(f"added:             {totals['added']}")
    print(
        f"skipped unchanged: {totals['unchanged']}"
        + (f" (+{totals['metadata_updated']} metadata-only updates)" if totals["metadata_updated"] else "")
    )
    print(f"skipped empty:     {totals['invalid']}")
    print(f"collection:        {args.collection} ({store.count()} records) in {elapsed:.1f} s")
    if report.records == 0:
        print("error: no document could be read from the input (see the bad records above)", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------- search
def cmd_search(args: argparse.Namespace) -> int:
    from reasonir_rag.store import ChromaStore

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    if not args.query.strip():
        raise ValueError("the question is empty")
    _check_local_path(args)
    encoder = _load_encoder(_encoder_name(args, must_exist=True), args)
    store = ChromaStore(args.collection, encoder=encoder, create=False, **_client_args(args))
    hits = store.search(args.query, k=args.k, task=args.task, instruction=args.instruction)
    if args.json:  # one JSON line per query: what `reasonir-rag rerank` reads
        results = [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in hits]
        print(
            json.dumps(
                {"query": args.query, "collection": args.collection, "k": args.k, "results": results},
                ensure_ascii=False,
            )
        )
        return 0
    if not hits:
        print("no results (the collection is empty)")
    for rank, hit in enumerate(hits, start=1):
        meta = _key_metadata(hit.metadata, hit.id)
        print(f"{rank:>2}. {hit.score:.4f}  {hit.id}" + (f"  [{meta}]" if meta else ""))
        print(f"    {_snippet(hit.text)}")
    return 0


# ---------------------------------------------------------------------- demo
_PAPER = "ReasonIR-8B + Qwen2.5-7B-Instruct: MMLU +6.4% relative to closed-book in the paper"


def _demo_models(result: Any) -> None:
    from reasonir_rag.demo import PAPER_ENCODER, PAPER_LLM

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
        print(f"        {_snippet(hit.text, 160)}")


def _demo_showcase(result: Any) -> None:
    c = result.config
    print(f"\n== pipeline on {len(result.showcase)} MMLU questions: rewrite -> retrieve -> rerank -> read ==")
    for n, item in enumerate(result.showcase, start=1):
        print(f"\nQ{n} [{item.subject}] {item.question}")
        print("   " + "  ".join(f"{letter}. {choice}" for letter, choice in zip("ABCD", item.choices, strict=False)))
        note = f" (rewrite failed, question used: {item.rewrite_error})" if item.rewrite_error else ""
        print(f"   rewrite{note}: {_snippet(item.rewrite, 300)}")
        _demo_hits(f"top {len(item.before)} retrieved (before reranking):", item.before, rerank=False)
        _demo_hits(f"top {len(item.after)} after reranking {c.candidates} candidates:", item.after, rerank=True)
        verdict = "correct" if item.predicted == item.answer else "wrong"
        print(f"   reader: {_snippet(item.reader_output, 300) or '(no text)'}")
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
    from reasonir_rag.demo import resolve_config, run_demo
    from reasonir_rag.sample_data import OPENSTAX_ATTRIBUTION

    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip()) if args.conditions else None
    if args.smoke:  # every stage at a small size; explicit options still win
        args.passages = args.passages or SMOKE["passages"]
        args.limit = SMOKE["limit"] if args.limit is None else args.limit
        args.examples = SMOKE["examples"] if args.examples is None else args.examples
    config = resolve_config(
        args.profile, encoder=args.encoder, llm=args.llm, llm_url=args.llm_url, device=args.device,
        max_length=args.max_length, k=args.k, candidates=args.candidates, rewrite_tokens=args.rewrite_tokens,
        reader_tokens=args.reader_tokens, eval_questions=0 if args.index_only else args.limit,
        conditions=conditions, passages=args.passages,
    )
    encoder_log = logging.getLogger("reasonir_rag.encoder")
    level = encoder_log.level
    if not args.verbose:  # truncating passages to --max-length is the demo's documented choice, printed below
        encoder_log.setLevel(logging.ERROR)
    print(f"reasonir-rag demo, profile {config.profile}", flush=True)
    printers = {"index": lambda r: (_demo_index(r), _demo_models(r)), "showcase": _demo_showcase, "eval": _demo_eval}

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


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    verbose_help = "more logging on stderr (-vv for debug); tracebacks on errors"
    parser = argparse.ArgumentParser(prog="reasonir-rag", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help=verbose_help)
    common = argparse.ArgumentParser(add_help=False)  # -v after the subcommand too, without resetting it
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", parents=[common], help="index .jsonl/.jsonl.gz/.txt/.md files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _add_store_args(p)
    _add_encoder_args(p)
    p.add_argument(
        "--chunk-tokens",
        type=int,
        default=None,
        help="tokens per chunk, 0: no chunking (default 512, or less if the encoder embeds less)",
    )
    p.add_argument("--chunk-overlap", type=int, default=64, help="tokens shared by consecutive chunks (default 64)")
    p.add_argument("--text-field", default="text", help="JSONL field with the text (default: text)")
    p.add_argument("--id-field", default=None, help="JSONL field with the id (default: id or _id)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="search a collection")
    p.add_argument("query", help="the question")
    _add_store_args(p)
    _add_encoder_args(p)
    p.add_argument("--task", default=None, help="BRIGHT task whose instruction to use (e.g. biology, aops:long)")
    p.add_argument("--instruction", default=None, help="a custom query instruction")
    p.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON line: {query, collection, k, results: [{id, score, text, metadata}]}",
    )
    p.set_defaults(func=cmd_search, no_progress=True)

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

    # ------------------------------------------------------------------ more subcommands
    # Each command module's register(sub) adds subparsers that set_defaults(func=handler), where
    # handler(args) -> exit code; expected errors raise ValueError/LookupError/OSError (exit 2, see main).
    llm_cli.register(sub)  # rewrite, rerank (reasonir_rag/llm_cli.py)
    eval_cli.register(sub)  # eval mmlu|gpqa|retrieval (reasonir_rag/eval/cli.py)
    return parser


def _setup_logging(verbose: int) -> dict[str, int]:
    """Logs go to stderr; returns the logger levels it changed, so that main() can put them back."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
    wanted = {"reasonir_rag": level, **{name: max(level, logging.WARNING) for name in ("httpx", "chromadb", "urllib3")}}
    saved = {name: logging.getLogger(name).level for name in wanted}
    for name, value in wanted.items():
        logging.getLogger(name).setLevel(value)
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    saved = _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("reasonir-rag: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, LookupError, OSError, ImportError) as exc:
        if args.verbose:
            logger.exception("%s failed", args.command)
        print(f"reasonir-rag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:  # main() may run inside a host program (or a test session): leave its logging as it was
        for name, value in saved.items():
            logging.getLogger(name).setLevel(value)


if __name__ == "__main__":
    sys.exit(main())

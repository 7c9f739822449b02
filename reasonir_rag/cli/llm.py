"""The ``rewrite`` and ``rerank`` subcommands of ``reasonir-rag`` (added by :func:`register`).

``reasonir-rag rewrite "question" --llm openai:MODEL`` prints the rewritten query (``--json``: one JSON line per
question with the prefix it wants). ``reasonir-rag rerank --query Q < results.jsonl`` reads documents as JSON
lines (``{"id", "text", "score", "metadata"?, ...}``), or ``search --json`` output (records with ``query`` and
``results``), and writes the reranked documents as JSON lines. The API key is read from ``OPENAI_API_KEY`` only
(never a flag: flags show up in process lists).

Failures are never silent. Exit 2 with one line on stderr (and nothing on stdout) when no question could be
rewritten or no document scored (a server that cannot be reached, a refused key); exit 1 when the output was
written but part of it is a fallback (questions kept as they were, documents scored 0), with a warning that
counts them; ``--json`` and each document's ``metadata["rerank_error"]`` say which.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from reasonir_rag.errors import InvalidInputError, LLMError, RerankError
from reasonir_rag.types import ScoredDocument

logger = logging.getLogger(__name__)

_DOC_KEYS = ("id", "text", "score", "metadata")


def register(subparsers: Any) -> None:
    """Add ``rewrite`` and ``rerank`` to an argparse subparsers object; each sets ``func(args) -> int``."""
    rw = subparsers.add_parser("rewrite", help="rewrite questions into long retrieval queries with an LLM",
                               description="Rewrite questions the ReasonIR way (or as HyDE passages).")
    rw.add_argument("queries", nargs="+", help="one or more questions ('-' reads one question per stdin line)")
    _llm_args(rw, default=None)
    rw.add_argument("--style", choices=["reasonir", "hyde"], default="reasonir")
    rw.add_argument("--max-tokens", type=int, default=2048, help="generation budget, also stated in the prompt")
    rw.add_argument("--no-keep-original", action="store_true", help="drop the question in front of the rewrite")
    rw.add_argument("--encoder", help="target encoder (path, hub id or 'minilm'): the rewrite is cut to fit it")
    rw.add_argument("--task", help="BRIGHT task whose query instruction the encoder will use (budget only)")
    rw.add_argument("--max-length", type=int, default=2048, help="token budget when no --encoder is given")
    rw.add_argument("--temperature", type=float, default=0.0)
    rw.add_argument("--seed", type=int, default=0)
    rw.add_argument("--cache", help="SQLite file that keeps rewrites across runs")
    rw.add_argument("--json", action="store_true", help="one JSON line per question: text, prefix_kind, ...")
    rw.set_defaults(func=run_rewrite)

    rr = subparsers.add_parser("rerank", help="rerank search results with ReasonIR's LLM reranker",
                               description="Rerank JSON-lines documents (or `search --json` output) for a query.")
    rr.add_argument("--query", help="the query (optional when the input records carry their own)")
    rr.add_argument("--input", "-i", default="-", help="JSON lines file ('-' = stdin)")
    rr.add_argument("--output", "-o", default="-", help="JSON lines file ('-' = stdout)")
    _llm_args(rr, default="hf:Qwen/Qwen2.5-7B-Instruct")
    rr.add_argument("--mode", choices=["logits", "generate"], default="logits")
    rr.add_argument("--template", choices=["raw", "chat"], default="raw")
    rr.add_argument("--alpha", type=float, default=0.5, help="weight of the LLM score (0.5 as in ReasonIR)")
    rr.add_argument("--top-n", type=int, help="keep only the best N")
    rr.add_argument("--task", help="BRIGHT task for a task-specific prompt (aops, leetcode, pony, theoremqa_*)")
    rr.add_argument("--max-doc-tokens", type=int, default=2048)
    rr.add_argument("--max-prompt-tokens", type=int, help="the served model's context length, if limited")
    rr.add_argument("--on-error", choices=["zero", "raise"], default="zero")
    rr.set_defaults(func=run_rerank)


def _llm_args(p: argparse.ArgumentParser, default: str | None) -> None:
    from reasonir_rag.cli.common import add_llm_timeout_arg

    p.add_argument("--llm", default=default, required=default is None,
                   help="openai:MODEL (a served model; OPENAI_BASE_URL / --base-url) or hf:PATH_OR_ID (local)")
    p.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--tokenizer", help="local tokenizer of a served model (exact token counts and chat templates)")
    p.add_argument("--device", help="device for hf: models (default: cuda when available)")
    add_llm_timeout_arg(p)


def _load(args: argparse.Namespace) -> Any:
    from reasonir_rag.llm import load_llm

    return load_llm(args.llm, base_url=args.base_url, device=args.device, tokenizer=args.tokenizer,
                    timeout=args.llm_timeout)


def run_rewrite(args: argparse.Namespace, stdin=None, stdout=None) -> int:
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    queries = [line.rstrip("\n") for line in stdin if line.strip()] if args.queries == ["-"] else args.queries
    encoder = None
    if args.encoder:
        from reasonir_rag.encoding.encoder import ReasonIREncoder

        encoder = ReasonIREncoder.from_pretrained(args.encoder, device=args.device)
    rewriter = QueryRewriter(_load(args), style=args.style, max_tokens=args.max_tokens,
                             keep_original=not args.no_keep_original, encoder=encoder, task=args.task,
                             max_length=args.max_length, temperature=args.temperature, seed=args.seed,
                             cache=args.cache)
    with _quiet_fallbacks(logging.getLogger("reasonir_rag.pipeline.rewriter"), keep=bool(getattr(args, "verbose", 0))):
        results = rewriter.rewrite_queries(queries)
    failed = [r for r in results if r.error]
    if failed and len(failed) == len(results):
        raise LLMError(f"no question could be rewritten ({len(failed)} of {len(results)}): {failed[0].error}")
    for r in results:
        if args.json:
            stdout.write(json.dumps({"query": r.original, "text": r.text, "prefix_kind": r.prefix_kind,
                                     "truncated": r.truncated, "cached": r.cached, "error": r.error},
                                    ensure_ascii=False) + "\n")
        else:
            stdout.write(r.text + "\n")
    if failed:
        logger.warning("%d of %d questions could not be rewritten and were kept as they are (first: %s)",
                       len(failed), len(results), failed[0].error)
        return 1
    return 0


def run_rerank(args: argparse.Namespace, stdin=None, stdout=None) -> int:
    from reasonir_rag.pipeline.reranker import QwenReranker

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    if args.input == "-":
        text = stdin.read()
    else:
        with open(args.input, encoding="utf-8") as f:
            text = f.read()
    records = read_records(text, args.query)
    reranker = QwenReranker(_load(args), alpha=args.alpha, top_n=args.top_n, mode=args.mode, task=args.task,
                            template=args.template, max_doc_tokens=args.max_doc_tokens,
                            max_prompt_tokens=args.max_prompt_tokens, on_error=args.on_error)
    rows: list[dict[str, Any]] = []
    for query, docs in records:
        for d in reranker.rerank(query, docs):
            row = {"id": d.id, "text": d.text, "score": d.score, "metadata": d.metadata}
            if len(records) > 1:
                row["query"] = query
            rows.append(row)
    unscored = [r["metadata"]["rerank_error"] for r in rows if r["text"].strip() and "rerank_error" in r["metadata"]]
    scorable = len([r for r in rows if r["text"].strip()])
    if unscored and len(unscored) == scorable:
        raise RerankError(f"no document could be scored ({len(unscored)} of {scorable}): {unscored[0]}")
    out = stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    finally:
        if out is not stdout:
            out.close()
    if unscored:
        logger.warning("%d of %d documents could not be scored and got 0 (see metadata.rerank_error; first: %s)",
                       len(unscored), scorable, unscored[0])
        return 1
    return 0


@contextlib.contextmanager
def _quiet_fallbacks(log: logging.Logger, *, keep: bool) -> Iterator[None]:
    """Hold back ``log``'s per-item warnings (the command sums them up in one line) unless ``keep`` (``-v``)."""
    if keep:
        yield
        return
    drop = _DropWarnings()
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


class _DropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING


def read_records(text: str, query: str | None) -> list[tuple[str, list[ScoredDocument]]]:
    """(query, documents) pairs from JSON lines of documents, a JSON list of them, or search records
    (``{"query": ..., "results": [...]}``). Raises ValueError naming the bad lines."""
    text = text.strip()
    if not text:
        raise InvalidInputError("no input: expected JSON lines of documents or `search --json` output")
    try:
        whole = json.loads(text)
        rows: list[tuple[int, Any]] = [(1, r) for r in whole] if isinstance(whole, list) else [(1, whole)]
    except json.JSONDecodeError:
        rows, problems = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(f"line {n}: {exc.msg}")
        if problems:
            raise InvalidInputError("input is not JSON lines: " + "; ".join(problems[:5])) from None
    records: list[tuple[str | None, list[ScoredDocument]]] = []
    loose: list[ScoredDocument] = []
    problems = []
    for n, row in rows:
        if isinstance(row, dict) and isinstance(row.get("results"), list):
            parsed = [_doc(r, f"line {n} result #{j}", problems) for j, r in enumerate(row["results"])]
            records.append((row.get("query") if isinstance(row.get("query"), str) else None,
                            [d for d in parsed if d is not None]))
        else:
            d = _doc(row, f"line {n}", problems)
            if d is not None:
                loose.append(d)
    if problems:
        raise InvalidInputError(f"{len(problems)} bad document(s): " + "; ".join(problems[:5]))
    if loose:
        records.insert(0, (None, loose))
    out: list[tuple[str, list[ScoredDocument]]] = []
    for found, docs in records:
        q = query or found
        if not q:
            raise InvalidInputError("no query: pass --query or give records with a 'query' field")
        out.append((q, docs))
    return out


def _doc(row: Any, where: str, problems: list[str]) -> ScoredDocument | None:
    if not isinstance(row, dict):
        problems.append(f"{where} is {type(row).__name__}, not an object")
        return None
    text = row.get("text", row.get("document", row.get("content")))
    if not isinstance(text, str):
        problems.append(f"{where} has no 'text' string")
        return None
    try:
        score = float(row.get("score", 0.0))
    except (TypeError, ValueError):
        problems.append(f"{where} has a non-numeric score {row.get('score')!r}")
        return None
    meta = dict(row.get("metadata") or {}) if isinstance(row.get("metadata", {}), dict) else {}
    meta.update({k: v for k, v in row.items() if k not in _DOC_KEYS and k not in ("document", "content")})
    return ScoredDocument(str(row.get("id", where)), text, meta, score)

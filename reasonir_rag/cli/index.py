"""`reasonir-rag index` and `reasonir-rag search`: documents into a Chroma collection, and questions against it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from reasonir_rag._common.progress import count_lines, progress
from reasonir_rag.cli.common import (
    add_encoder_args,
    add_store_args,
    check_local_path,
    connection,
    encoder_name,
    key_metadata,
    load_encoder,
    snippet,
)

logger = logging.getLogger(__name__)

_INDEX_GROUP = 2048  # most documents read per add(): bounded memory, and a killed run resumes at most this far back
_GROUP_SECONDS = 2.0  # aim for one add() (and one move of the progress bar) about this often


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="index .jsonl/.jsonl.gz/.txt/.md files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_store_args(p)
    add_encoder_args(p)
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
    add_store_args(p)
    add_encoder_args(p)
    p.add_argument("--task", default=None, help="BRIGHT task whose instruction to use (e.g. biology, aops:long)")
    p.add_argument("--instruction", default=None, help="a custom query instruction")
    p.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON line: {query, collection, k, results: [{id, score, text, metadata}]}",
    )
    p.set_defaults(func=cmd_search, no_progress=True)


def _groups(docs: Iterator[Any], *, first: int = 16, most: int = _INDEX_GROUP) -> Iterator[list[Any]]:
    """Groups of documents, one add() each, sized from the time the caller took on the last one (at most 4x
    bigger at a time) so that each takes about ``_GROUP_SECONDS``: the bar moves every few seconds with an 8B
    encoder, and a fast encoder still writes big batches. A document's chunks stay in one add()."""
    size, batch = first, []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            started = time.perf_counter()
            yield batch
            took = time.perf_counter() - started
            size = max(1, min(most, 4 * size, int(size * _GROUP_SECONDS / max(took, 1e-3))))
            batch = []
    if batch:
        yield batch


def count_documents(paths: list[str]) -> int | None:
    """The input's documents, counted before reading it, for the bar's total: a line count per JSONL file (no
    decoding: cheap; blank, bad and repeated records included, so an upper bound, which the bar corrects at
    the end) and one per text or Markdown file. None with a ``.jsonl.gz`` (counting would decompress it
    all): the bar then shows counts and rate."""
    from reasonir_rag.index.loaders import _resolve

    files = [path for path, _ in _resolve(paths)]
    if any(path.name.lower().endswith(".gz") for path in files):
        return None
    return sum(count_lines(path) if path.name.lower().endswith(".jsonl") else 1 for path in files)


def _whole(doc: Any) -> Any:
    """An unchunked document is its own parent, so it replaces the chunks of an earlier chunked run."""
    from reasonir_rag.index.records import SourcedDocument

    return SourcedDocument(doc.id, doc.text, doc.metadata, origin=getattr(doc, "origin", ""), parent=doc.id)


def cmd_index(args: argparse.Namespace) -> int:
    from reasonir_rag.index.chunking import chunk_documents
    from reasonir_rag.index.collections import check_collection_name
    from reasonir_rag.index.loaders import LoadReport, load_documents
    from reasonir_rag.index.records import FirstSeen
    from reasonir_rag.index.store import ChromaStore

    check_collection_name(args.collection)  # before a model loads or a folder is made
    if (args.chunk_tokens is not None and args.chunk_tokens < 0) or args.chunk_overlap < 0:
        raise ValueError("--chunk-tokens and --chunk-overlap must be >= 0")
    report = LoadReport()
    first_seen = FirstSeen()  # a repeated document id keeps its first occurrence across the whole input
    docs = first_seen(load_documents(args.paths, text_field=args.text_field, id_field=args.id_field, report=report))
    encoder = load_encoder(encoder_name(args, must_exist=False), args)
    store = ChromaStore(args.collection, encoder=encoder, show_progress=False, connection=connection(args))
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
    totals = {"chunks": 0, "added": 0, "unchanged": 0, "metadata_updated": 0, "invalid": 0, "removed": 0}
    rejected: list[Any] = []
    start = time.perf_counter()
    with progress(total=count_documents(args.paths), desc=f"indexing into {args.collection}", unit="doc",
                  show=not args.no_progress) as bar:
        for group in _groups(docs):
            pieces = (
                chunk_documents(group, tokenizer=encoder.tokenizer, chunk_tokens=chunk_tokens, overlap=overlap)
                if chunk_tokens
                else [_whole(doc) for doc in group]
            )
            stats = store.add(pieces, show_progress=False)
            totals["chunks"] += len(pieces)
            for key in ("added", "unchanged", "metadata_updated", "invalid", "removed"):
                totals[key] += getattr(stats, key)
            rejected.extend(stats.rejected)
            bar.update(len(group))
        bar.total = bar.n  # the count was an upper bound (or unknown): end at what was read
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
    print(f"rejected:          {totals['invalid']}" + (f" (first: {rejected[0]})" if rejected else ""))
    for item in rejected[1:10]:
        logger.warning("rejected %s", item)
    repeated = first_seen.repeated
    print(f"repeated ids:      {len(repeated)}" + (f" (first kept: {', '.join(repeated[:5])}"
                                                   f"{' ...' if len(repeated) > 5 else ''})" if repeated else ""))
    print(f"stale chunks:      {totals['removed']} removed")
    print(f"collection:        {args.collection} ({store.count()} records) in {elapsed:.1f} s")
    if report.records == 0:
        print("error: no document could be read from the input (see the bad records above)", file=sys.stderr)
        return 2
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from reasonir_rag.index.store import ChromaStore

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    if not args.query.strip():
        raise ValueError("the question is empty")
    check_local_path(args)
    encoder = load_encoder(encoder_name(args, must_exist=True), args)
    store = ChromaStore(args.collection, encoder=encoder, create=False, connection=connection(args))
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
        meta = key_metadata(hit.metadata, hit.id)
        print(f"{rank:>2}. {hit.score:.4f}  {hit.id}" + (f"  [{meta}]" if meta else ""))
        print(f"    {snippet(hit.text)}")
    return 0

"""Retrieval test collections in the two public formats: BEIR and BRIGHT.

BEIR: ``corpus.jsonl`` (or ``.jsonl.gz``) with ``_id``, ``title``, ``text``; ``queries.jsonl`` with ``_id``,
``text``; ``qrels/<split>.tsv`` with a ``query-id corpus-id score`` header.
BRIGHT (its dataset card): per task, ``documents`` (``id``, ``content``; ``long_documents`` for the
long-document setting) and ``examples`` (``id``, ``query``, ``gold_ids``, ``gold_ids_long``,
``excluded_ids``; the ``<model>_reason`` configs carry reasoning-expanded queries in ``query``). Locally:
``<root>/<config>/<task>.jsonl`` (``.jsonl.gz`` or ``.parquet`` also read).

Malformed lines are skipped, logged and listed in :attr:`IRCollection.problems` with file and line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import DataNotFoundError, InvalidInputError
from reasonir_rag.index.loaders import utf8_lines
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)


@dataclass
class IRCollection:
    """Documents, queries and judgments; ``task`` is what ``encode_queries(task=...)`` takes (BRIGHT)."""

    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    excluded: dict[str, set[str]] = field(default_factory=dict)
    task: str | None = None
    fingerprint: str = ""
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing, hopeless = self.judgment_gaps()
        if missing:
            logger.warning("%s: %d relevant document id(s) in the judgments are not in the corpus; %d quer(ies) "
                           "have none of theirs and can only score 0 (first: %s)", self.name, missing,
                           len(hopeless), hopeless[:3])

    def judgment_gaps(self) -> tuple[int, list[str]]:
        """(relevant document ids judged but absent from the corpus, the queries with none of theirs there):
        such a document can never be retrieved, and such a query scores 0 whatever the retriever does."""
        missing, hopeless = 0, []
        for qid, judged in self.qrels.items():
            relevant = [d for d, r in judged.items() if r > 0]
            absent = sum(d not in self.corpus for d in relevant)
            missing += absent
            if relevant and absent == len(relevant):
                hopeless.append(qid)
        return missing, sorted(hopeless)

    def describe(self) -> dict[str, Any]:
        missing, hopeless = self.judgment_gaps()
        return {"name": self.name, "documents": len(self.corpus), "queries": len(self.queries),
                "judged_queries": len(self.qrels), "task": self.task, "fingerprint": self.fingerprint,
                "skipped_records": len(self.problems), "judged_missing_from_corpus": missing,
                "queries_without_relevant_documents": len(hopeless)}


# ---------------------------------------------------------------------------------------------- reading
def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a text file: UTF-16/32 read by its byte-order mark, a UTF-8 mark dropped, invalid
    UTF-8 replaced with U+FFFD and logged once per file (with its first line), so one bad byte costs no record."""
    bad: list[int] = []
    with _open_binary(path) as fh:
        for number, raw in enumerate(utf8_lines(fh, str(path)), start=1):
            raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(number)
                line = raw.decode("utf-8", errors="replace")
            yield number, line
    if bad:
        logger.warning("%s:%d: invalid UTF-8 on %d line(s); decoded with replacement characters", path, bad[0],
                       len(bad))


def _file_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        st = p.stat()
        digest.update(f"{p.name}:{st.st_size}\0".encode())
        with p.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def read_records(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, record) from a JSONL(.gz) or parquet file; bad lines go to ``problems``."""
    if path.suffix == ".parquet":
        pq = require("pyarrow.parquet")
        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
        return
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            continue
        yield number, record


def _first_existing(folder: Path, stem: str) -> Path:
    for suffix in (".jsonl", ".jsonl.gz", ".parquet"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    parquet = sorted(folder.glob(f"{stem}-*.parquet"))
    if len(parquet) == 1:
        return parquet[0]
    raise DataNotFoundError(f"no {stem}.jsonl, {stem}.jsonl.gz or {stem}.parquet in {folder}")


def _log_problems(name: str, problems: list[str]) -> None:
    if problems:
        logger.warning("%s: skipped %d malformed record(s): %s", name, len(problems), "; ".join(problems[:5]))


# ------------------------------------------------------------------------------------------------- BEIR
def load_beir(folder: str | os.PathLike[str], split: str = "test", *, name: str | None = None) -> IRCollection:
    """A BEIR collection; a document's text is ``title + " " + text`` (the MTEB convention)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataNotFoundError(f"BEIR folder {root} does not exist")
    corpus_path = _first_existing(root, "corpus")
    queries_path = _first_existing(root, "queries")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise DataNotFoundError(f"no qrels for split {split!r} at {qrels_path}; available: {available}")
    problems: list[str] = []
    qrels = _read_qrels(qrels_path, problems)
    corpus: dict[str, Document] = {}
    for doc_id, text, rec in _beir_records(corpus_path, problems):
        title = rec.get("title") or ""
        corpus[doc_id] = Document(doc_id, f"{title} {text}".strip(), {"title": title})
    queries = {qid: text for qid, text, _ in _beir_records(queries_path, problems) if qid in qrels}
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        problems.append(f"{qrels_path}: {len(unknown)} judged query id(s) missing from {queries_path.name} "
                        f"(first: {unknown[:3]})")
        for qid in unknown:
            qrels.pop(qid)
    _log_problems(str(root), problems)
    if not corpus or not queries:
        raise InvalidInputError(f"{root}: no usable {'documents' if not corpus else 'queries'}; "
                         f"problems: {problems[:5]}")
    return IRCollection(name=name or root.name, corpus=corpus, queries=queries, qrels=qrels,
                        fingerprint=_file_digest([corpus_path, queries_path, qrels_path]), problems=problems)


def _beir_records(path: Path, problems: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(_id, text, record)`` of each well-formed BEIR record; the others are noted in ``problems``."""
    for number, rec in read_records(path, problems):
        rec_id, text = rec.get("_id"), rec.get("text")
        if rec_id is None or not isinstance(text, str):
            problems.append(f"{path}:{number}: needs '_id' and a string 'text'")
            continue
        yield str(rec_id), text, rec


def _read_qrels(path: Path, problems: list[str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _text_lines(path):
        parts = line.rstrip("\r\n").split("\t")
        if number == 1 and parts[:1] == ["query-id"]:
            continue
        if not line.strip():
            continue
        if len(parts) != 3:
            problems.append(f"{path}:{number}: expected 3 tab-separated columns, got {len(parts)}")
            continue
        try:
            score = int(parts[2])
        except ValueError:
            problems.append(f"{path}:{number}: relevance {parts[2]!r} is not an integer")
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


# ----------------------------------------------------------------------------------------------- BRIGHT
def load_bright(
    root: str | os.PathLike[str], task: str, *, long_documents: bool = False, reasoning: str | None = None,
) -> IRCollection:
    """One BRIGHT task. ``reasoning="gpt4"`` reads the ``gpt4_reason`` examples (reasoning queries)."""
    base = Path(root)
    docs_path = _first_existing(base / ("long_documents" if long_documents else "documents"), task)
    examples_dir = base / (f"{reasoning}_reason" if reasoning else "examples")
    examples_path = _first_existing(examples_dir, task)
    gold_field = "gold_ids_long" if long_documents else "gold_ids"
    problems: list[str] = []
    corpus: dict[str, Document] = {}
    for number, rec in read_records(docs_path, problems):
        doc_id, content = rec.get("id"), rec.get("content")
        if doc_id is None or not isinstance(content, str):
            problems.append(f"{docs_path}:{number}: needs 'id' and a string 'content'")
            continue
        corpus[str(doc_id)] = Document(str(doc_id), content)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    excluded: dict[str, set[str]] = {}
    for number, rec in read_records(examples_path, problems):
        qid, query, gold = rec.get("id"), rec.get("query"), rec.get(gold_field)
        if qid is None or not isinstance(query, str) or not isinstance(gold, (list, tuple)) or not gold:
            problems.append(f"{examples_path}:{number}: needs 'id', a string 'query' and a non-empty "
                            f"list '{gold_field}'")
            continue
        qid = str(qid)
        drop = {str(d) for d in rec.get("excluded_ids") or () if str(d) != "N/A"}
        clash = drop & {str(g) for g in gold}
        if clash:
            problems.append(f"{examples_path}:{number}: excluded_ids overlap {gold_field} ({sorted(clash)[:3]})")
            continue
        queries[qid] = query
        qrels[qid] = {str(g): 1 for g in gold}
        excluded[qid] = drop
    _log_problems(f"BRIGHT {task}", problems)
    if not corpus or not queries:
        raise InvalidInputError(f"BRIGHT {task}: no usable {'documents' if not corpus else 'examples'}; "
                         f"problems: {problems[:5]}")
    return IRCollection(name=f"bright/{task}" + (":long" if long_documents else ""), corpus=corpus,
                        queries=queries, qrels=qrels, excluded=excluded,
                        task=f"{task}:long" if long_documents else task,
                        fingerprint=_file_digest([docs_path, examples_path]), problems=problems)


# ------------------------------------------------------------------------------------------- subsampling
def subsample(collection: IRCollection, *, n_queries: int, n_other_docs: int, seed: int = 0) -> IRCollection:
    """A smaller collection for quick checks: ``n_queries`` judged queries, their relevant documents and
    ``n_other_docs`` other documents drawn at random (all seeded)."""
    rng = random.Random(seed)
    judged = sorted(q for q in collection.qrels if q in collection.queries)
    chosen = sorted(rng.sample(judged, min(n_queries, len(judged))))
    needed = {d for q in chosen for d, r in collection.qrels[q].items() if r > 0 and d in collection.corpus}
    others = sorted(set(collection.corpus) - needed)
    needed.update(rng.sample(others, min(n_other_docs, len(others))))
    return IRCollection(
        name=f"{collection.name}[{len(chosen)}q,{len(needed)}d,seed={seed}]",
        corpus={d: collection.corpus[d] for d in sorted(needed)},
        queries={q: collection.queries[q] for q in chosen},
        qrels={q: dict(collection.qrels[q]) for q in chosen},
        excluded={q: set(collection.excluded.get(q, ())) for q in chosen},
        task=collection.task, fingerprint=collection.fingerprint, problems=list(collection.problems),
    )

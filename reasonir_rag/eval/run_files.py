"""What a retrieval run leaves on disk for other tools: TREC run files and per-query scores.

A TREC run file has one line per retrieved document, the six columns trec_eval reads:
``query_id Q0 doc_id rank score tag``. Ranks follow :func:`~reasonir_rag.eval.ir_metrics.rank` (score, then
doc id, as trec_eval orders them) and scores are written with ``repr`` so that reading the file back gives the
same run, float for float. Per-query scores are JSON lines, one per (system, query).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.ir_metrics import RetrievalScores, Run, rank
from reasonir_rag.eval.report import _atomic_write

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def safe_name(system: str) -> str:
    """A system name usable as a file-name part and a TREC tag (no spaces, slashes or colons)."""
    cleaned = _UNSAFE.sub("_", system).strip("._")
    if not cleaned:
        raise InvalidInputError(f"system name {system!r} has no usable characters")
    return cleaned


def trec_lines(run: Run, tag: str) -> list[str]:
    """The run as TREC lines, queries in sorted order, documents by rank (1 = best)."""
    tag = safe_name(tag)
    lines = []
    for qid in sorted(run):
        for position, doc_id in enumerate(rank(run[qid]), start=1):
            if any(c.isspace() for c in qid + doc_id):
                raise InvalidInputError(f"TREC run files are whitespace-separated: query {qid!r} / document "
                                        f"{doc_id!r} contains whitespace")
            lines.append(f"{qid} Q0 {doc_id} {position} {float(run[qid][doc_id])!r} {tag}")
    return lines


def write_trec_run(run: Run, path: str | os.PathLike[str], tag: str) -> Path:
    """The run as a TREC run file (written atomically)."""
    out = Path(path)
    _atomic_write(out, "".join(line + "\n" for line in trec_lines(run, tag)).encode())
    return out


def read_trec_run(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, float]], set[str]]:
    """The run in a TREC run file and the tags it names; a malformed line is an error naming file and line."""
    run: dict[str, dict[str, float]] = {}
    tags: set[str] = set()
    source = Path(path)
    with source.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise InvalidInputError(f"{source}:{number}: a TREC run line has 6 columns, found {len(parts)}")
            qid, _, doc_id, position, score, tag = parts
            try:
                int(position)
                value = float(score)
            except ValueError:
                raise InvalidInputError(f"{source}:{number}: rank {position!r} or score {score!r} is not a "
                                        "number") from None
            if doc_id in run.setdefault(qid, {}):
                raise InvalidInputError(f"{source}:{number}: document {doc_id!r} appears twice for query {qid!r}")
            run[qid][doc_id] = value
            tags.add(tag)
    return run, tags


def per_query_rows(systems: Mapping[str, RetrievalScores]) -> list[dict[str, object]]:
    """One row per (system, query) with every metric the system was scored on."""
    return [{"system": name, "query_id": qid, **values}
            for name, scores in systems.items() for qid, values in sorted(scores.per_query.items())]


def write_per_query(systems: Mapping[str, RetrievalScores], path: str | os.PathLike[str]) -> Path:
    """``per_query.jsonl``: one JSON line per (system, query), written atomically."""
    out = Path(path)
    _atomic_write(out, "".join(json.dumps(row, sort_keys=True) + "\n" for row in per_query_rows(systems)).encode())
    return out

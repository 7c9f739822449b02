"""Where a bulk run reads its corpus from: ``.jsonl``/``.jsonl.gz``/``.parquet`` files, a list, or a Dataset.

A path (a file or a folder of one kind of file) is read by Ray Data itself; a list of :class:`Document` s,
dicts or strings becomes rows with the text under ``text_field``; a ``ray.data.Dataset`` is used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reasonir_rag._common.progress import count_lines
from reasonir_rag._deps import require
from reasonir_rag.errors import DataNotFoundError, InvalidInputError
from reasonir_rag.types import Document


def _files(path: Path) -> tuple[list[str], list[str]]:
    """The parquet and the JSON-lines files of a file or folder."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    parquet = [str(p) for p in files if p.suffix == ".parquet"]
    jsonl = [str(p) for p in files if p.name.endswith((".jsonl", ".jsonl.gz", ".json"))]
    return parquet, jsonl


def count_rows(source: Any) -> int | None:
    """The source's rows, counted cheaply before the run for the progress bar's total: a list's length,
    parquet footers, JSONL line counts (no decoding; blank lines included). None for ``.jsonl.gz`` files, an
    iterator or a ``ray.data.Dataset`` (counting would read them): the bar then shows counts and rate."""
    if isinstance(source, (list, tuple)):
        return len(source)
    if not isinstance(source, (str, os.PathLike)) or not Path(source).exists():
        return None
    parquet, jsonl = _files(Path(source))
    if any(name.endswith(".gz") for name in jsonl):
        return None
    total = sum(count_lines(name) for name in jsonl)
    if parquet:
        footer = require("pyarrow.parquet").ParquetFile
        total += sum(footer(name).metadata.num_rows for name in parquet)
    return total


def read_source(ray: Any, source: Any, text_field: str, rows_per_batch: int) -> Any:
    if isinstance(source, ray.data.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DataNotFoundError(f"no corpus at {path}")
        parquet, jsonl = _files(path)
        if parquet and not jsonl:
            return ray.data.read_parquet(parquet)
        if jsonl and not parquet:
            return ray.data.read_json(jsonl, lines=True)
        raise InvalidInputError(f"{path}: expected .jsonl(.gz) or .parquet files (one kind), found "
                         f"{len(jsonl)} jsonl and {len(parquet)} parquet")
    if isinstance(source, Iterable):
        rows = []
        for item in source:
            if isinstance(item, Document):
                rows.append({"id": item.id, text_field: item.text, **dict(item.metadata)})
            elif isinstance(item, str):
                rows.append({text_field: item})
            elif isinstance(item, Mapping):
                rows.append(dict(item))
            else:
                raise InvalidInputError(f"source items must be Documents, dicts or strings; got {type(item).__name__}")
        if not rows:
            raise InvalidInputError("the source holds no documents")
        return ray.data.from_items(rows, override_num_blocks=max(1, min(200, -(-len(rows) // rows_per_batch))))
    raise InvalidInputError(f"source must be a path, a list of documents or a ray Dataset; got {type(source).__name__}")

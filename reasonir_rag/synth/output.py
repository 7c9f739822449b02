"""The evaluation set on disk, in BRIGHT's layout, so ``load_bright`` and ``eval retrieval --bright`` read it as is.

``OUT/documents/TASK.jsonl`` (``id``, ``content``), ``OUT/examples/TASK.jsonl`` (``id``, ``query``, ``gold_ids``,
``gold_ids_long`` (empty: no long documents), ``excluded_ids``, plus this project's ``negatives``, ``seed_id`` and
``checks``: why the query passed), ``OUT/rejected.jsonl`` (every query or seed dropped, with its reason) and
``OUT/manifest.json`` (models, prompt hashes, seeds, counts, caveats). Each file is written whole to a temporary
name and renamed, so a killed run never leaves half a file; the journal beside them makes a rerun cheap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reasonir_rag.errors import StorageError
from reasonir_rag.eval.retrieval_report import SYNTHESIZED_CAVEATS

CAVEATS = (  # the report's caveats for any synthesized collection, then what only this recipe adds
    *SYNTHESIZED_CAVEATS,
    "The queries are only as good as the LLM that wrote them; the checks here are lexical (copying, pointing at "
    "the passage, near-duplicates) and do not verify that the passage answers the query.",
)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"could not write {path}: {exc}") from exc


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    _write(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    path = out / "manifest.json"
    _write(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path


def bright_paths(out: Path, task: str) -> tuple[Path, Path]:
    """Where the documents and the examples of ``task`` go (BRIGHT's ``documents/`` and ``examples/``)."""
    return out / "documents" / f"{task}.jsonl", out / "examples" / f"{task}.jsonl"

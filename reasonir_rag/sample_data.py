"""The sample data a clone of the repository carries in ``data/``: OpenStax passages, MMLU, GPQA and SciFact.

The demo, the tests, the cookbook and the benchmarks all find it here, so a fresh clone needs nothing else.
``$REASONIR_DATA`` (or an explicit ``root``) points them at another folder with the same layout. A package
installed from a wheel has no ``data/``: it says so and asks for ``--data`` or ``$REASONIR_DATA``.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasonir_rag.errors import DataNotFoundError

ENV_VAR = "REASONIR_DATA"
REPO_DATA = Path(__file__).resolve().parents[1] / "data"
OPENSTAX_BOOKS = ("anatomy-physiology", "chemistry-bundle", "microbiology", "university-physics-bundle")
OPENSTAX_ATTRIBUTION = "Passages: OpenStax (Rice University), CC BY 4.0, access for free at openstax.org"
JSONL_SUFFIXES = (".jsonl.gz", ".jsonl")


def cache_root() -> Path:
    """Where conversions and downloads are kept: ``$REASONIR_CACHE``, else ``~/.cache/reasonir-rag``."""
    return Path(os.environ.get("REASONIR_CACHE") or Path.home() / ".cache" / "reasonir-rag").expanduser()


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$REASONIR_DATA``, else the checkout's ``data/``; a missing folder is named."""
    env = os.environ.get(ENV_VAR)
    if root is not None:
        path, origin = Path(root).expanduser(), "the folder given"
    elif env:
        path, origin = Path(env).expanduser(), f"${ENV_VAR}"
    else:
        path, origin = REPO_DATA, "the sample data ships with a clone of the repository, not with a wheel"
    if not path.is_dir():
        raise DataNotFoundError(f"sample data folder {path} does not exist ({origin}); pass --data or set "
                                f"{ENV_VAR} to a folder holding openstax/, mmlu/, gpqa/ and scifact/")
    return path


def openstax_dir(root: str | os.PathLike[str] | None = None) -> Path:
    return data_root(root) / "openstax"


def mmlu_dir(root: str | os.PathLike[str] | None = None) -> Path:
    return data_root(root) / "mmlu"


def gpqa_zip(root: str | os.PathLike[str] | None = None) -> Path:
    """GPQA's official encrypted zip (decrypted in memory by :func:`~reasonir_rag.eval.gpqa.load_gpqa`)."""
    return data_root(root) / "gpqa" / "dataset.zip"


def scifact_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """BEIR SciFact (CC BY-NC 2.0: non-commercial use only)."""
    return data_root(root) / "scifact"


def jsonl_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``*.jsonl`` and ``*.jsonl.gz`` files of ``folder``, sorted; a book present in both forms counts once
    (the plain file wins)."""
    by_stem: dict[str, Path] = {}
    for suffix in reversed(JSONL_SUFFIXES):  # plain first, so it wins
        for path in Path(folder).glob(f"*{suffix}"):
            by_stem.setdefault(path.name[: -len(suffix)], path)
    return [by_stem[stem] for stem in sorted(by_stem)]


def openstax_book(book: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """The file of one book (``microbiology``, ...) in ``folder`` (default :func:`openstax_dir`), gzipped or not."""
    folder = Path(folder) if folder is not None else openstax_dir()
    for suffix in JSONL_SUFFIXES:
        if (folder / f"{book}{suffix}").is_file():
            return folder / f"{book}{suffix}"
    raise DataNotFoundError(f"no OpenStax book {book!r} (.jsonl or .jsonl.gz) in {folder} "
                            f"(the shipped books: {', '.join(OPENSTAX_BOOKS)})")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file, gzipped (``.gz``) or not; blank lines skipped."""
    path = Path(path)
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def openstax_records(book: str, folder: str | os.PathLike[str] | None = None) -> Iterator[dict[str, Any]]:
    """The passages of one book as dicts (``id``, ``book``, ``chapter``, ``module``, ``section``, ``text``, ...)."""
    return read_jsonl(openstax_book(book, folder))

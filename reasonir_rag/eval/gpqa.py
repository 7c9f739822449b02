"""GPQA from the official encrypted ``dataset.zip``, decrypted IN MEMORY only: its authors ask that the questions
never be written out in plain text, so nothing here writes them to disk or puts question text in a log or an
error message. :func:`fetch_gpqa` brings the official zip from the public release into the cache."""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import random
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from reasonir_rag.errors import DataNotFoundError, GPQAPasswordError, InvalidInputError, StorageError
from reasonir_rag.eval.datasets import Dataset, Question, finish_loading, sha256_hex
from reasonir_rag.sample_data import cache_root

logger = logging.getLogger(__name__)

GPQA_SUBSETS = {"main": "gpqa_main.csv", "diamond": "gpqa_diamond.csv", "extended": "gpqa_extended.csv"}
# Published in the GPQA README (github.com/idavidrein/gpqa); the zip only keeps crawlers from reading the
# questions. Override with password= or the GPQA_PASSWORD environment variable.
GPQA_PUBLIC_PASSWORD = "deserted-untie-orchid"
# The public release and the sha256 of its dataset.zip (the copy in the repository's data/gpqa is the same file).
GPQA_RELEASE_URL = "https://github.com/idavidrein/gpqa/raw/main/dataset.zip"
GPQA_SHA256 = "461ae7329f15a3e35f8184d2dac24b990f34fdf12f366ca4062d8e6638cd08dc"
_GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                 "Incorrect Answer 3", "Record ID", "High-level domain")


def load_gpqa(
    zip_path: str | os.PathLike[str], subset: str = "diamond", *, password: str | None = None,
    seed: int = 0, subjects: Iterable[str] | None = None, sample: int | None = None,
    per_subject: int | None = None,
) -> Dataset:
    """GPQA ``main``, ``diamond`` or ``extended`` from the official zip, decrypted in memory only.

    Choices are shuffled per question with a generator seeded by ``seed`` and the record id, as the GPQA
    authors recommend (the correct answer is always listed first in the CSV). The same record gets the
    same order in every subset and selection. ``subjects`` are the high-level domains (Physics, ...).
    """
    if subset not in GPQA_SUBSETS:
        raise InvalidInputError(f"unknown GPQA subset {subset!r}; choose one of {sorted(GPQA_SUBSETS)}")
    path = Path(zip_path)
    if not path.is_file():
        raise DataNotFoundError(f"GPQA zip {path} does not exist")
    pwd = (password or os.environ.get("GPQA_PASSWORD") or GPQA_PUBLIC_PASSWORD).encode()
    data, member = _read_zip_member(path, GPQA_SUBSETS[subset], pwd)
    where = f"{path.name}:{member}"
    questions, problems = parse_gpqa_csv(data.decode("utf-8-sig"), subset=subset, seed=seed, where=where)
    del data
    dataset = Dataset(name=f"gpqa_{subset}", split=subset, questions=questions, source=str(path),
                      fingerprint=sha256_hex(path.read_bytes()), problems=problems)
    return finish_loading(dataset, subjects, sample, per_subject, seed)


def fetch_gpqa(url: str = GPQA_RELEASE_URL, *, cache_dir: str | os.PathLike[str] | None = None,
               sha256: str | None = GPQA_SHA256, timeout: float = 60.0) -> Path:
    """GPQA's official zip in the cache (``<cache>/gpqa/dataset.zip``), downloaded once from ``url``.

    The file is checked against ``sha256`` (the official zip's; ``None`` skips the check) before it takes its
    place, written atomically, so a killed or corrupted download is never used. A cached file that matches is
    returned without any network call. ``url`` may be ``file://`` (a local copy, as the tests use).
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = target / "gpqa" / "dataset.zip"
    if target.is_file() and (sha256 is None or sha256_hex(target.read_bytes()) == sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading the GPQA zip from %s into %s", url, target)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (OSError, ValueError) as exc:
        raise StorageError(f"could not download the GPQA zip from {url}: {exc}") from None
    if sha256 is not None and (got := sha256_hex(data)) != sha256:
        raise InvalidInputError(f"the file at {url} is not the official GPQA zip (sha256 {got}, expected {sha256})")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".dataset.", suffix=".zip.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _read_zip_member(path: Path, basename: str, pwd: bytes) -> tuple[bytes, str]:
    """The bytes of the member named ``basename``, decrypted in memory (never extracted).

    ZipCrypto decryption is pure Python (about 2 MB/s): the plaintext stays cached in this process's memory
    (a few MB), keyed by the zip's identity, so loading several subsets or selections does not repeat it.
    """
    st = path.stat()
    return _read_zip_member_cached(str(path.resolve()), st.st_mtime_ns, st.st_size, basename, pwd)


@functools.lru_cache(maxsize=4)
def _read_zip_member_cached(resolved: str, _mtime: int, _size: int, basename: str,
                            pwd: bytes) -> tuple[bytes, str]:
    path = Path(resolved)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == basename]
            if not names:
                raise InvalidInputError(f"{path}: no member named {basename!r} (is this the official GPQA zip?)")
            try:
                return zf.read(names[0], pwd=pwd), names[0]
            except (RuntimeError, zlib.error, zipfile.BadZipFile) as exc:
                # ZipCrypto checks one byte of the password: a wrong one fails here, or (1 in 256) later
                # as a CRC or inflate error. Either way the message must not echo any decrypted content.
                raise GPQAPasswordError(
                    f"{path}: cannot decrypt {names[0]!r} ({type(exc).__name__}): wrong password? "
                    "Pass password= or set GPQA_PASSWORD (the GPQA README publishes it)") from None
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{path}: not a readable zip file ({exc})") from None


def parse_gpqa_csv(text: str, *, subset: str, seed: int, where: str) -> tuple[list[Question], list[str]]:
    """Questions and per-record problems from a GPQA CSV held in memory. Problems name records, never text."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _GPQA_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInputError(f"{where}: missing column(s) {missing}; expected the official GPQA CSV columns")
    questions: list[Question] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(reader, start=1):
        record = (row.get("Record ID") or "").strip()
        label = f"{where} record {number}" + (f" ({record})" if record else "")
        empty = [c for c in _GPQA_COLUMNS if not (row.get(c) or "").strip()]
        if empty:
            problems.append(f"{label}: empty field(s) {empty}")
            continue
        if record in seen:
            problems.append(f"{label}: duplicate Record ID")
            continue
        seen.add(record)
        correct = row["Correct Answer"]  # texts as published: prompts strip them unless the protocol is paper
        options = [row[f"Incorrect Answer {i}"] for i in (1, 2, 3)] + [correct]
        order = list(range(4))
        random.Random(f"gpqa:{seed}:{record}").shuffle(order)
        choices = tuple(options[i] for i in order)
        questions.append(Question(
            f"gpqa/{record}", row["High-level domain"].strip(), row["Question"], choices,
            order.index(3), metadata={"subdomain": (row.get("Subdomain") or "").strip(), "subset": subset,
                                      "record_id": record}))
    return questions, problems

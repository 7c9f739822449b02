"""Multiple-choice benchmarks as plain :class:`Question` lists: MMLU and GPQA.

MMLU loads from a local folder (the hendrycks CSV layout without a header, or the cais/mmlu column layout
``question,choice0..3,answer``) or from the Hugging Face hub. GPQA loads from the official encrypted
``dataset.zip`` and is decrypted IN MEMORY only: its authors ask that the questions never be written out in
plain text, so nothing here writes them to disk or puts question text in a log or an error message.

Malformed records are skipped, logged and listed in :attr:`Dataset.problems` (file and line or record);
a structural problem (a missing column, a wrong password, no usable record) raises a ValueError instead.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import logging
import os
import random
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import DataNotFoundError, GPQAPasswordError, InvalidInputError, StorageError
from reasonir_rag.sample_data import cache_root

logger = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"
MMLU_HUB_ID = "cais/mmlu"
GPQA_SUBSETS = {"main": "gpqa_main.csv", "diamond": "gpqa_diamond.csv", "extended": "gpqa_extended.csv"}
# Published in the GPQA README (github.com/idavidrein/gpqa); the zip only keeps crawlers from reading the
# questions. Override with password= or the GPQA_PASSWORD environment variable.
GPQA_PUBLIC_PASSWORD = "deserted-untie-orchid"
# The public release and the sha256 of its dataset.zip (the copy in the repository's data/gpqa is the same file).
GPQA_RELEASE_URL = "https://github.com/idavidrein/gpqa/raw/main/dataset.zip"
GPQA_SHA256 = "461ae7329f15a3e35f8184d2dac24b990f34fdf12f366ca4062d8e6638cd08dc"
_GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                 "Incorrect Answer 3", "Record ID", "High-level domain")
_MAX_LOGGED_PROBLEMS = 5


@dataclass(frozen=True)
class Question:
    """One multiple-choice question. Text fields stay out of ``repr`` so logs never show them (GPQA)."""

    id: str
    subject: str
    question: str = field(repr=False)
    choices: tuple[str, ...] = field(repr=False)
    answer_index: int
    metadata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))
        if not 2 <= len(self.choices) <= len(LETTERS):
            raise InvalidInputError(f"question {self.id}: needs 2..{len(LETTERS)} choices, got {len(self.choices)}")
        if not 0 <= self.answer_index < len(self.choices):
            raise InvalidInputError(f"question {self.id}: answer_index {self.answer_index} is outside "
                             f"0..{len(self.choices) - 1}")

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer_index]

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]


@dataclass
class Dataset:
    """Questions plus what a report needs to reproduce them (source, fingerprint, seed, skipped records)."""

    name: str
    split: str
    questions: list[Question]
    source: str
    fingerprint: str
    problems: list[str] = field(default_factory=list)
    seed: int | None = None
    selection: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)

    def __getitem__(self, i: int) -> Question:
        return self.questions[i]

    @property
    def subjects(self) -> list[str]:
        return sorted({q.subject for q in self.questions})

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (no question text) for the run record."""
        counts: dict[str, int] = {}
        for q in self.questions:
            counts[q.subject] = counts.get(q.subject, 0) + 1
        return {"name": self.name, "split": self.split, "source": self.source, "fingerprint": self.fingerprint,
                "n_questions": len(self.questions), "skipped_records": len(self.problems), "seed": self.seed,
                "selection": self.selection, "subjects": dict(sorted(counts.items())),
                "question_ids_sha256": _sha256("\n".join(q.id for q in self.questions).encode())}


# --------------------------------------------------------------------------------------------- selection
def _norm_subject(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def select_questions(
    questions: Sequence[Question], *, subjects: Iterable[str] | None = None, sample: int | None = None,
    per_subject: int | None = None, seed: int = 0,
) -> list[Question]:
    """Filter by subject, then sample ``per_subject`` per subject and/or ``sample`` overall, reproducibly.

    Sampling keeps the original order. Each subject draws from its own seeded generator, so adding a
    subject does not change which questions another subject gets.
    """
    pool = list(questions)
    if isinstance(subjects, str):
        subjects = [subjects]
    if subjects is not None:
        wanted = {_norm_subject(s) for s in subjects}
        known = {_norm_subject(q.subject) for q in pool}
        unknown = sorted(wanted - known)
        if unknown:
            raise InvalidInputError(f"unknown subject(s) {unknown}; available: {sorted(known)}")
        pool = [q for q in pool if _norm_subject(q.subject) in wanted]
    for name, value in (("sample", sample), ("per_subject", per_subject)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    if per_subject is not None:
        by_subject: dict[str, list[int]] = {}
        for i, q in enumerate(pool):
            by_subject.setdefault(q.subject, []).append(i)
        keep: set[int] = set()
        for subject, idx in by_subject.items():
            rng = random.Random(f"{seed}:{subject}")
            keep.update(rng.sample(idx, min(per_subject, len(idx))))
        pool = [q for i, q in enumerate(pool) if i in keep]
    if sample is not None and sample < len(pool):
        keep_idx = set(random.Random(seed).sample(range(len(pool)), sample))
        pool = [q for i, q in enumerate(pool) if i in keep_idx]
    return pool


def _finish(dataset: Dataset, subjects, sample, per_subject, seed) -> Dataset:
    subjects = [subjects] if isinstance(subjects, str) else (list(subjects) if subjects is not None else None)
    if dataset.problems:
        shown = "; ".join(dataset.problems[:_MAX_LOGGED_PROBLEMS])
        more = len(dataset.problems) - _MAX_LOGGED_PROBLEMS
        logger.warning("%s: skipped %d malformed record(s): %s%s", dataset.name, len(dataset.problems), shown,
                       f" (and {more} more)" if more > 0 else "")
    if not dataset.questions:
        raise InvalidInputError(f"{dataset.name}: no usable question in {dataset.source}"
                         + (f"; problems: {'; '.join(dataset.problems[:_MAX_LOGGED_PROBLEMS])}"
                            if dataset.problems else ""))
    dataset.questions = select_questions(dataset.questions, subjects=subjects, sample=sample,
                                         per_subject=per_subject, seed=seed)
    dataset.seed = seed
    dataset.selection = {"subjects": sorted(subjects) if subjects is not None else None, "sample": sample,
                         "per_subject": per_subject}
    return dataset


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -------------------------------------------------------------------------------------------------- MMLU
def load_mmlu(
    source: str | os.PathLike[str] | None = None, *, split: str = "test", subjects: Iterable[str] | None = None,
    sample: int | None = None, per_subject: int | None = None, seed: int = 0,
) -> Dataset:
    """MMLU from a local folder (hendrycks or cais/mmlu CSV layout) or, when ``source`` is a hub id, the hub.

    ``source`` may be the folder holding ``<split>/`` (or ``data/<split>/``) or the split folder itself,
    with one ``<subject>_<split>.csv`` per subject; ``"hf:owner/name"``, ``"cais/mmlu"`` or ``None``
    (``cais/mmlu``) loads from the hub through ``datasets`` (online only; its ``all`` config).
    """
    text = str(source) if source is not None else f"hf:{MMLU_HUB_ID}"
    if text.startswith("hf:") or (text == MMLU_HUB_ID and not Path(text).exists()):
        dataset = _load_mmlu_hub(text.removeprefix("hf:"), split)
    else:
        dataset = _load_mmlu_folder(Path(text), split)
    return _finish(dataset, subjects, sample, per_subject, seed)


def _mmlu_files(folder: Path, split: str) -> dict[str, Path]:
    """``{subject: file}`` for ``<subject>_<split>.csv`` or ``.csv.gz`` (the plain file wins when both exist)."""
    files: dict[str, Path] = {}
    for suffix in (f"_{split}.csv", f"_{split}.csv.gz"):
        for path in sorted(folder.glob(f"*{suffix}")):
            files.setdefault(path.name[: -len(suffix)], path)
    return dict(sorted(files.items()))


def _mmlu_split_dir(root: Path, split: str) -> tuple[Path, dict[str, Path]]:
    if not root.is_dir():
        raise DataNotFoundError(f"MMLU folder {root} does not exist")
    for candidate in (root / split, root / "data" / split, root):
        if candidate.is_dir() and (files := _mmlu_files(candidate, split)):
            return candidate, files
    raise DataNotFoundError(f"no '<subject>_{split}.csv' files under {root} (looked in {root / split}, "
                            f"{root / 'data' / split} and {root}, for .csv and .csv.gz)")


def _load_mmlu_folder(root: Path, split: str) -> Dataset:
    folder, files = _mmlu_split_dir(root, split)
    digest = hashlib.sha256()
    questions: list[Question] = []
    problems: list[str] = []
    for subject, path in files.items():
        data = path.read_bytes()
        if path.suffix == ".gz":  # the fingerprint is the content's: the same for a gzipped and a plain copy
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                problems.append(f"{path}: unreadable gzip file ({exc}); its questions are left out")
                continue
        digest.update(f"{subject}_{split}.csv".encode() + b"\0" + data)
        got, bad = parse_mmlu_csv(decode_csv(data, str(path)), subject=subject, split=split, where=str(path))
        questions.extend(got)
        problems.extend(bad)
    return Dataset(name="mmlu", split=split, questions=questions, source=str(folder),
                   fingerprint=digest.hexdigest(), problems=problems)


def decode_csv(data: bytes, where: str) -> str:
    """A CSV file's text: UTF-8 (a byte-order mark dropped), UTF-16/32 when a byte-order mark says so; invalid
    UTF-8 is replaced with U+FFFD and logged with the file and its first bad line (the other records stay
    usable, as the document loaders do)."""
    for bom, encoding in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                          (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            logger.warning("%s: %s text (byte-order mark); read as %s", where, encoding.upper(), encoding.upper())
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = sum(1 for raw in data.split(b"\n") if _invalid_utf8(raw))
        logger.warning("%s:%d: invalid UTF-8 (%s) on %d line(s); decoded with replacement characters", where, line,
                       exc.reason, bad)
        return data.decode("utf-8-sig", errors="replace")


def _invalid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _header_layout(row: list[str], where: str) -> dict[str, Any] | None:
    """Column positions when ``row`` is a cais/mmlu-style header; None when it is a data row (hendrycks)."""
    names = [c.strip().lower() for c in row]
    if "question" not in names:
        return None
    missing = [c for c in ("question", "answer") if c not in names]
    choices = [i for i, n in enumerate(names) if n.startswith("choice")] or [
        names.index(letter) for letter in "abcd" if letter in names]
    if missing or len(choices) < 2:
        raise InvalidInputError(f"{where}: header {row} lacks column(s) "
                         f"{missing or ['choice0..choice3']}; expected question,choice0..3,answer")
    return {"question": names.index("question"), "choices": choices, "answer": names.index("answer"),
            "width": len(names)}


def parse_mmlu_csv(text: str, *, subject: str, split: str, where: str) -> tuple[list[Question], list[str]]:
    """Questions and per-line problems from one MMLU CSV file (either layout).

    A quote left open makes the csv module swallow every line below it into one field: such a row is
    reported at the line where it starts and the lines after that line are read again, so the records
    below it are not lost. An unreadable line (csv.Error) is reported and skipped the same way.
    """
    lines = io.StringIO(text).readlines()
    questions: list[Question] = []
    problems: list[str] = []
    layout: dict[str, Any] | None = None
    index = 0
    first = True
    offset = 0  # physical lines before the current reader
    while True:
        reader = csv.reader(lines[offset:])
        start_line = offset + 1
        restart = None
        try:
            for row in reader:
                line, start_line = start_line, offset + reader.line_num + 1
                if not row or all(not c.strip() for c in row):
                    continue
                if first:
                    first = False
                    layout = _header_layout(row, where)
                    if layout is not None:
                        continue
                    layout = {"question": 0, "choices": [1, 2, 3, 4], "answer": 5, "width": 6, "letters": True}
                assert layout is not None
                qid = f"mmlu/{subject}/{split}/{index}"
                index += 1
                if len(row) != layout["width"]:
                    problem = f"{where}:{line}: expected {layout['width']} columns, got {len(row)}"
                    if start_line - line > 1:  # one row over several lines: an unclosed quote swallowed them
                        problems.append(problem + " (a quote opened on this line is never closed; the lines "
                                        "below are read again)")
                        restart = line
                        break
                    problems.append(problem)
                    continue
                question = row[layout["question"]].strip()
                choices = tuple(row[i].strip() for i in layout["choices"])
                raw = row[layout["answer"]].strip()
                answer = _answer_index(raw, len(choices), letters_only=layout.get("letters", False))
                if answer is None:
                    kind = "letter" if layout.get("letters") else "value"
                    problems.append(f"{where}:{line}: bad answer {kind} {raw!r} (expected "
                                    f"{'A-' + LETTERS[len(choices) - 1] if layout.get('letters') else '0-3 or A-D'})")
                    continue
                if not question:
                    problems.append(f"{where}:{line}: empty question")
                    continue
                questions.append(Question(qid, subject, question, choices, answer))
        except csv.Error as exc:
            problems.append(f"{where}:{start_line}: unreadable CSV ({exc}); line skipped")
            restart = start_line
        if restart is None:
            return questions, problems
        offset = restart


def _answer_index(raw: str, n: int, *, letters_only: bool) -> int | None:
    raw = raw.strip().upper()
    if len(raw) == 1 and raw in LETTERS[:n]:
        return LETTERS.index(raw)
    if not letters_only and raw.isdecimal() and int(raw) < n:  # isdigit() admits "²", which int() rejects
        return int(raw)
    return None


def _load_mmlu_hub(repo: str, split: str) -> Dataset:
    datasets = require("datasets")
    ds = datasets.load_dataset(repo, "all", split=split)
    questions: list[Question] = []
    problems: list[str] = []
    counters: dict[str, int] = {}
    for i, row in enumerate(ds):
        subject = str(row["subject"])
        index = counters.get(subject, 0)
        counters[subject] = index + 1
        try:
            questions.append(Question(f"mmlu/{subject}/{split}/{index}", subject, str(row["question"]).strip(),
                                      tuple(str(c).strip() for c in row["choices"]), int(row["answer"])))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{repo}[{split}] row {i}: {exc}")
    return Dataset(name="mmlu", split=split, questions=questions, source=f"hf:{repo}",
                   fingerprint=str(getattr(ds, "_fingerprint", "")), problems=problems)


# -------------------------------------------------------------------------------------------------- GPQA
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
                      fingerprint=_sha256(path.read_bytes()), problems=problems)
    return _finish(dataset, subjects, sample, per_subject, seed)


def fetch_gpqa(url: str = GPQA_RELEASE_URL, *, cache_dir: str | os.PathLike[str] | None = None,
               sha256: str | None = GPQA_SHA256, timeout: float = 60.0) -> Path:
    """GPQA's official zip in the cache (``<cache>/gpqa/dataset.zip``), downloaded once from ``url``.

    The file is checked against ``sha256`` (the official zip's; ``None`` skips the check) before it takes its
    place, written atomically, so a killed or corrupted download is never used. A cached file that matches is
    returned without any network call. ``url`` may be ``file://`` (a local copy, as the tests use).
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = target / "gpqa" / "dataset.zip"
    if target.is_file() and (sha256 is None or _sha256(target.read_bytes()) == sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading the GPQA zip from %s into %s", url, target)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (OSError, ValueError) as exc:
        raise StorageError(f"could not download the GPQA zip from {url}: {exc}") from None
    if sha256 is not None and (got := _sha256(data)) != sha256:
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
        correct = row["Correct Answer"].strip()
        options = [row[f"Incorrect Answer {i}"].strip() for i in (1, 2, 3)] + [correct]
        order = list(range(4))
        random.Random(f"gpqa:{seed}:{record}").shuffle(order)
        choices = tuple(options[i] for i in order)
        questions.append(Question(
            f"gpqa/{record}", row["High-level domain"].strip(), row["Question"].strip(), choices,
            order.index(3), metadata={"subdomain": (row.get("Subdomain") or "").strip(), "subset": subset,
                                      "record_id": record}))
    return questions, problems

"""MMLU from a local folder (the hendrycks CSV layout without a header, or the cais/mmlu column layout
``question,choice0..3,answer``; plain or gzipped CSVs) or from the Hugging Face hub."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import DataNotFoundError, InvalidInputError
from reasonir_rag.eval.datasets import LETTERS, Dataset, Question, finish_loading

logger = logging.getLogger(__name__)

MMLU_HUB_ID = "cais/mmlu"


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
    return finish_loading(dataset, subjects, sample, per_subject, seed)


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
                question = row[layout["question"]]  # as published: prompts strip it unless the protocol is paper
                choices = tuple(row[i] for i in layout["choices"])
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
            questions.append(Question(f"mmlu/{subject}/{split}/{index}", subject, str(row["question"]),
                                      tuple(str(c) for c in row["choices"]), int(row["answer"])))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{repo}[{split}] row {i}: {exc}")
    return Dataset(name="mmlu", split=split, questions=questions, source=f"hf:{repo}",
                   fingerprint=str(getattr(ds, "_fingerprint", "")), problems=problems)



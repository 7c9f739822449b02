"""Read documents from JSONL (optionally gzipped), text and Markdown files, or folders of them.

Bad input never stops a load: a broken JSONL line or a record without text is logged with its file and
line, counted in the :class:`LoadReport` and skipped (the first ``MAX_LOGGED_PER_FILE`` per file are logged
one by one, the rest in one summary line; the report lists them all). Invalid UTF-8 is decoded with U+FFFD
replacement characters and a warning naming the file (documented behaviour: the rest of the text is still
useful). Files that start with a UTF-16 or UTF-32 byte-order mark (what Windows tools often write) are read
in that encoding; a UTF-8 byte-order mark is dropped wherever a line starts with one (concatenated files).
Folders are read recursively in sorted order; hidden files and folders (names starting with '.') and
files with other extensions are ignored there. A file with an unsupported extension named explicitly
is an error.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from reasonir_rag.errors import DataNotFoundError, InvalidInputError
from reasonir_rag.index.records import SourcedDocument
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

SUFFIXES = (".jsonl.gz", ".jsonl", ".txt", ".md")
_ID_FIELDS = ("id", "_id")
MAX_LOGGED_PER_FILE = 10
_UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
              (b"\xfe\xff", "utf-16"))


@dataclass
class LoadReport:
    """What a load read and what it skipped (``skipped``: ``(where, reason)`` with ``where`` = file[:line])."""

    files: int = 0
    records: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    replaced_utf8: list[str] = field(default_factory=list)
    _logged: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def bad_records(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        return (
            f"{self.files} file(s), {self.records} document(s), {self.bad_records} skipped, "
            f"{len(self.replaced_utf8)} with invalid UTF-8 replaced"
        )


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def _resolve(paths: str | Path | Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Each file to read with its document-id prefix (path relative to the folder given, else its name)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path)
                if file.is_file() and _suffix(file) and not any(p.startswith(".") for p in rel.parts):
                    found.append((file, rel.as_posix()))
        elif path.is_file():
            if _suffix(path) is None:
                raise InvalidInputError(f"unsupported file type: {path} (supported: {', '.join(SUFFIXES)})")
            found.append((path, path.name))
        else:
            raise DataNotFoundError(f"no such file or folder: {path}")
    return found


def _decode(data: bytes, where: str, report: LoadReport) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        file = where.rsplit(":", 1)[0] if where[-1:].isdigit() else where
        seen = any(w == file or w.startswith(file + ":") for w in report.replaced_utf8[-1:])
        log = logger.debug if seen else logger.warning  # one warning per file; every line is in the report
        log("%s: invalid UTF-8 (%s); decoded with replacement characters", where, exc.reason)
        report.replaced_utf8.append(where)
        return data.decode("utf-8", errors="replace")


def _skip(report: LoadReport, where: str, reason: str, file: str | None = None) -> None:
    file = file or where
    shown = report._logged.get(file, 0)
    if shown < MAX_LOGGED_PER_FILE:
        logger.error("%s: %s; skipped", where, reason)
    report._logged[file] = shown + 1
    report.skipped.append((where, reason))


def _log_unshown(report: LoadReport, file: str) -> None:
    hidden = report._logged.get(file, 0) - MAX_LOGGED_PER_FILE
    if hidden > 0:
        logger.error("%s: %d more bad record(s) skipped (not logged one by one; see LoadReport.skipped)", file, hidden)


def _wide_encoding(head: bytes) -> str | None:
    """"utf-16" or "utf-32" when ``head`` starts with that encoding's byte-order mark."""
    return next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)


def utf8_lines(stream: BinaryIO | gzip.GzipFile, rel: str) -> Iterator[bytes]:
    """The stream's lines as UTF-8 bytes: a UTF-16/32 file (byte-order mark) is decoded first."""
    encoding = _wide_encoding(stream.peek(4)[:4]) if hasattr(stream, "peek") else None
    if encoding is None:
        yield from stream
        return
    logger.warning("%s: %s text (byte-order mark); read as %s", rel, encoding.upper(), encoding.upper())
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="\n")
    try:
        for line in text:
            yield line.encode("utf-8", "surrogatepass")
    finally:
        text.detach()


def _record_id(record: dict[str, Any], id_field: str | None) -> Any:
    for name in (id_field, *_ID_FIELDS) if id_field else _ID_FIELDS:
        value = record.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _jsonl(stream: BinaryIO | gzip.GzipFile, rel: str, text_field: str, id_field: str | None,
           report: LoadReport) -> Iterator[Document]:
    for line_no, raw in enumerate(utf8_lines(stream, rel), start=1):
        where = f"{rel}:{line_no}"
        if raw.startswith(_UTF8_BOM):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            record = json.loads(_decode(raw, where, report))
        except json.JSONDecodeError as exc:
            hint = "; the line holds NUL bytes: UTF-16 text without a byte-order mark?" if b"\x00" in raw else ""
            _skip(report, where, f"invalid JSON ({exc.msg} at column {exc.colno}){hint}", rel)
            continue
        if not isinstance(record, dict):
            _skip(report, where, f"expected a JSON object, got {type(record).__name__}", rel)
            continue
        text = record.get(text_field)
        if not isinstance(text, str):
            got = "missing" if text is None else f"a {type(text).__name__}, not a string"
            if text is None:
                ids = {id_field, *_ID_FIELDS}
                fields = sorted(k for k, v in record.items() if isinstance(v, str) and k not in ids)
                got += f" (string fields here: {', '.join(fields[:8]) or 'none'}; choose one with --text-field)"
            _skip(report, where, f"text field {text_field!r} is {got}", rel)
            continue
        if not text.strip():
            _skip(report, where, f"text field {text_field!r} is empty", rel)
            continue
        doc_id = _record_id(record, id_field) or where
        skip = {text_field, *((id_field,) if id_field else ()), *_ID_FIELDS}
        metadata = {k: v for k, v in record.items() if k not in skip}
        metadata.setdefault("source", rel)
        report.records += 1
        yield SourcedDocument(doc_id, text, metadata, origin=where)


def _read_file(path: Path, rel: str, text_field: str, id_field: str | None, report: LoadReport) -> Iterator[Document]:
    suffix = _suffix(path)
    if suffix in (".txt", ".md"):
        data = path.read_bytes()
        wide = _wide_encoding(data[:4])
        if wide:
            logger.warning("%s: %s text (byte-order mark); read as %s", rel, wide.upper(), wide.upper())
        text = data.decode(wide, errors="replace") if wide else _decode(data, rel, report)
        if text.startswith("\ufeff"):
            text = text[1:]
        if not text.strip():
            _skip(report, rel, "empty file")
            return
        report.records += 1
        yield SourcedDocument(rel, text, {"source": rel, "format": suffix[1:]}, origin=rel)
        return
    opener = gzip.open if suffix == ".jsonl.gz" else open
    with opener(path, "rb") as stream:
        yield from _jsonl(stream, rel, text_field, id_field, report)


def load_documents(
    paths: str | Path | Iterable[str | Path],
    *,
    text_field: str = "text",
    id_field: str | None = None,
    report: LoadReport | None = None,
) -> Iterator[Document]:
    """Documents from files and folders (``.jsonl``, ``.jsonl.gz``, ``.txt``, ``.md``), lazily.

    JSONL: the text comes from ``text_field``; the id from ``id_field``, ``id`` or ``_id``, else
    ``"{relpath}:{line}"``; every other field (``title`` too) goes into the metadata, plus ``source``.
    Text and Markdown files are one document each, id = path relative to the folder given (or the file
    name). Paths are checked now (missing path or unsupported extension raise at once); pass a
    :class:`LoadReport` to see what was read and skipped. Each is a :class:`SourcedDocument` whose ``origin``
    (``file:line``) names it if the store later rejects it.
    """
    files = _resolve(paths)
    report = report if report is not None else LoadReport()
    return _iterate(files, text_field, id_field, report)


def _iterate(
    files: list[tuple[Path, str]], text_field: str, id_field: str | None, report: LoadReport
) -> Iterator[Document]:
    for path, rel in files:
        report.files += 1
        try:
            yield from _read_file(path, rel, text_field, id_field, report)
        except (OSError, EOFError) as exc:  # unreadable or truncated (gzip) file: keep the others
            _skip(report, rel, f"could not read the file ({exc})")
        _log_unshown(report, rel)

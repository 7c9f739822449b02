"""Chroma errors as the user should meet them: a folder (or a server's disk) that cannot take writes is a
:class:`~reasonir_rag.errors.StorageError` naming the place and what to do, and every error is masked of secrets.

Chroma reports a read-only or full database as an ``InternalError`` (``(code: 8) attempt to write a readonly
database``, ``(code: 13) database or disk is full``, ``Read-only file system (os error 30)``) or, mid-compaction,
with no cause at all (``Failed to apply logs to the metadata segment``). Without this a full disk looks like
every record being refused one by one: the writer would try a thousand records, each failing slowly. So an error
is first checked against those messages and against the folder itself (a read-only mount, less than
:data:`MIN_FREE_BYTES` free, no write permission).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reasonir_rag._common import secrets
from reasonir_rag.errors import ReasonIRError, StorageError

MIN_FREE_BYTES = 1 << 20  # below this a SQLite write (a page, its WAL frame, an HNSW flush) may not fit
_SIGNS = {  # lower-cased fragments of the messages SQLite, the OS and Chroma give for each state
    "read-only": ("readonly database", "read-only file system", "os error 30", "(code: 8)"),
    "full": ("database or disk is full", "no space left on device", "os error 28", "(code: 13)"),
    "not writable": ("permission denied", "os error 13", "unable to open database file", "(code: 14)"),
}
_WHAT_TO_DO = {
    "read-only": "Chroma writes to its folder even to read it: use a writable folder (--path, path=) or a copy",
    "full": "free some space, or use a folder on another disk",
    "not writable": "give this user write permission on it, or use another folder",
}


def folder_state(folder: str | Path) -> str | None:
    """What the file system says of ``folder`` (or the nearest existing parent): ``"read-only"``, ``"full"``,
    ``"not writable"``, or None when it can take writes."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        flags = os.statvfs(path).f_flag
        free = shutil.disk_usage(path).free
    except OSError:
        return None
    if flags & os.ST_RDONLY:
        return "read-only"
    if free < MIN_FREE_BYTES:
        return "full"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return None


def storage_problem(exc: BaseException, folder: str | Path | None) -> str | None:
    """The state behind ``exc`` (a key of ``_SIGNS``), from its message or, embedded, from the folder. From a
    server, "permission denied" is more likely its auth than its disk, so only read-only and full count there."""
    text = str(exc).lower()
    for state, signs in _SIGNS.items():
        if (folder is not None or state != "not writable") and any(sign in text for sign in signs):
            return state
    return folder_state(folder) if folder is not None else None


def storage_error(exc: BaseException, where: str, folder: str | Path | None, doing: str) -> StorageError | None:
    """A :class:`StorageError` for ``exc`` when the cause is the storage itself, else None."""
    state = storage_problem(exc, folder)
    if state is None:
        return None
    place = f"the Chroma folder {where}" if folder is not None else f"the Chroma server at {where} (its disk)"
    detail = secrets.redact(f"{type(exc).__name__}: {exc}")
    return StorageError(f"{doing} failed: {place} is {state} ({detail}); {_WHAT_TO_DO[state]}")


@contextmanager
def chroma_errors(where: str, folder: str | Path | None, doing: str) -> Iterator[None]:
    """Around a Chroma call: a storage failure becomes a :class:`StorageError`; any other error passes as it is,
    with the secrets a server may have echoed into it (or into what it chains) masked."""
    try:
        yield
    except ReasonIRError:
        raise
    except Exception as exc:
        secrets.scrub(exc)
        error = storage_error(exc, where, folder, doing)
        if error is not None:
            raise error from exc
        raise


class CheckedCollection:
    """A Chroma collection whose every method runs inside :func:`chroma_errors` (attributes pass through)."""

    def __init__(self, collection: Any, *, name: str, where: str, folder: str | Path | None):
        self._collection = collection
        self._name = name
        self._where = where
        self._folder = folder

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._collection, attr)
        if not callable(value):
            return value

        @functools.wraps(value)
        def checked(*args: Any, **kwargs: Any) -> Any:
            with chroma_errors(self._where, self._folder, f"{attr} in collection {self._name!r}"):
                return value(*args, **kwargs)

        return checked


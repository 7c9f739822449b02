"""A resumable journal: every result is committed to SQLite the moment it arrives.

A day of LLM calls must survive a crash. Each result is one row, written in its own transaction (WAL mode,
``synchronous=FULL`` by default: a committed row survives a killed process and a power cut), keyed by a hash
of everything that determines it (condition, question id, model, prompt hash, seed...). A rerun asks the
journal first and only calls what is missing, so a killed run resumes without repeating a recorded call
and without losing one. Safe to share between threads (one connection behind a lock; a key being computed
by one thread is waited for, not computed twice) and between processes (SQLite locking, busy timeout).

Values are JSON: what is stored is exactly what a report can be rebuilt from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._common.sqlite_file import SQLiteFile
from reasonir_rag.errors import InvalidInputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    meta TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_MISSING = object()


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"journal {what} must be JSON-serialisable: {exc}") from None


def _row(key: str, value: Any, kind: str, meta: Any) -> tuple[Any, ...]:
    return key, kind, _dumps(meta, "meta"), _dumps(value, "value"), time.time()


def journal_key(kind: str, **parts: Any) -> str:
    """A stable key: sha256 of the canonical JSON of ``kind`` and ``parts`` (order-independent)."""
    return hashlib.sha256(_dumps({"kind": kind, **parts}, "key parts").encode()).hexdigest()


class Journal:
    """``get(key)`` / ``put(key, value)`` over a SQLite file, plus :meth:`get_or_compute` for resumable calls."""

    key = staticmethod(journal_key)

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL", timeout: float = 60.0):
        self.path = Path(path)
        self._db = SQLiteFile(self.path, _SCHEMA, what="the journal", synchronous=synchronous, timeout=timeout,
                              require_wal=True)
        self._lock = self._db.lock  # also guards the in-flight table of get_or_compute
        self._inflight: dict[str, threading.Event] = {}

    # ----------------------------------------------------------------------------------------- basics
    def get(self, key: str, default: Any = None) -> Any:
        """The stored value for ``key``, or ``default``."""
        rows = self._db.read("SELECT value FROM entries WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def __contains__(self, key: object) -> bool:
        return bool(self._db.read("SELECT 1 FROM entries WHERE key = ?", (key,)))

    def __len__(self) -> int:
        return self._db.count("entries")

    def put(self, key: str, value: Any, *, kind: str = "", meta: Any = None) -> None:
        """Store ``value`` under ``key`` (replacing any previous value), committed before returning."""
        self._db.write("INSERT OR REPLACE INTO entries (key, kind, meta, value, created) VALUES (?, ?, ?, ?, ?)",
                       [_row(key, value, kind, meta)])

    def add(self, key: str, value: Any, *, kind: str = "", meta: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent; True when it was stored."""
        return self._db.write("INSERT OR IGNORE INTO entries (key, kind, meta, value, created) VALUES (?, ?, ?, ?, ?)",
                              [_row(key, value, kind, meta)]) == 1

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of those ``keys`` that are present."""
        rows = self._db.read_keys("SELECT key, value FROM entries WHERE key IN ({marks})", list(keys))
        return {k: json.loads(v) for k, v in rows}

    def items(self, kind: str | None = None) -> Iterator[tuple[str, Any, Any]]:
        """(key, meta, value) of every entry (of ``kind``), oldest first."""
        sql = "SELECT key, meta, value FROM entries"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        for k, meta, value in self._db.read(sql + " ORDER BY created, rowid", args):
            yield k, json.loads(meta), json.loads(value)

    # ------------------------------------------------------------------------------------- resumable
    def get_or_compute(self, key: str, compute: Callable[[], Any], *, kind: str = "", meta: Any = None) -> Any:
        """The recorded value for ``key``; otherwise ``compute()``, recorded before it is returned.

        Threads asking for the same key while it is being computed wait for that one result. If
        ``compute`` raises, nothing is recorded and the exception propagates (a rerun will retry).
        """
        while True:
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                return value
            with self._lock:
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    owner = True
                else:
                    owner = False
            if not owner:
                event.wait()
                continue  # the owner stored it (or failed: then this thread tries)
            try:
                # another owner may have stored it between this thread's first look and its registration
                value = self.get(key, _MISSING)
                if value is not _MISSING:
                    return value
                value = compute()
                self.put(key, value, kind=kind, meta=meta)
                return value
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    # ----------------------------------------------------------------------------------------- closing
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"


@dataclass
class Filled:
    """What :func:`fill` did: the value of every key it could (journaled or new), how many of each, and the
    failures it did not record (``unavailable``: one was transient, so it stopped after that batch)."""

    values: dict[str, Any]
    new: int = 0
    journaled: int = 0
    failures: list[str] = field(default_factory=list)
    unavailable: bool = False


def fill(journal: Journal, keys: Sequence[str], items: Sequence[Any], compute: Callable[[list[Any]], list[Any]], *,
         batch: int, kind: str = "", metas: Sequence[Any] | None = None,
         progress: Callable[[int], AbstractContextManager[Any]] | None = None) -> Filled:
    """The batch-then-save loop: the values journaled under ``keys`` are read back; the other ``items`` go to
    ``compute`` ``batch`` at a time (one value or exception back per item), and each value is committed (with
    its ``metas`` entry) as its batch returns, so a killed run loses at most the batch in flight. An exception is
    not recorded (a rerun retries it); a transient one (``.transient``: the backend is down, its own retries
    spent) stops the loop after its batch, since the rest would fail the same way. ``progress(n)``, when there
    are ``n`` items to compute, opens a bar that is updated after each batch."""
    found = journal.get_many(keys)
    todo = [i for i, key in enumerate(keys) if key not in found]
    done = Filled(found, journaled=len(keys) - len(todo))
    if not todo:
        return done
    with progress(len(todo)) if progress is not None else contextlib.nullcontext() as bar:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            for i, value in zip(chunk, compute([items[i] for i in chunk]), strict=True):
                if isinstance(value, BaseException):
                    done.failures.append(f"{type(value).__name__}: {value}")
                    done.unavailable = done.unavailable or bool(getattr(value, "transient", False))
                    continue
                journal.put(keys[i], value, kind=kind, meta=metas[i] if metas is not None else None)
                found[keys[i]] = value
                done.new += 1
            if bar is not None:
                bar.update(len(chunk))
            if done.unavailable:
                break
    return done

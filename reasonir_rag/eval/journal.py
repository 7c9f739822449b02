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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from reasonir_rag.errors import InvalidInputError, StorageError, UsageError

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


def journal_key(kind: str, **parts: Any) -> str:
    """A stable key: sha256 of the canonical JSON of ``kind`` and ``parts`` (order-independent)."""
    return hashlib.sha256(_dumps({"kind": kind, **parts}, "key parts").encode()).hexdigest()


class Journal:
    """``get(key)`` / ``put(key, value)`` over a SQLite file, plus :meth:`get_or_compute` for resumable calls."""

    key = staticmethod(journal_key)

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL", timeout: float = 60.0):
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise InvalidInputError(f"synchronous must be FULL, EXTRA or NORMAL, got {synchronous!r}")
        self.path = Path(path)
        self._lock = threading.RLock()
        self._inflight: dict[str, threading.Event] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"the journal at {self.path} cannot be opened for writing: {exc} "
                          "(is the folder writable and the disk not full?)") from exc
        if str(mode).lower() != "wal":
            raise UsageError(f"{self.path}: SQLite refused WAL mode (got {mode}); use a local filesystem")

    # ----------------------------------------------------------------------------------------- basics
    def get(self, key: str, default: Any = None) -> Any:
        """The stored value for ``key``, or ``default``."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def put(self, key: str, value: Any, *, kind: str = "", meta: Any = None) -> None:
        """Store ``value`` under ``key`` (replacing any previous value), committed before returning."""
        row = (key, kind, _dumps(meta, "meta"), _dumps(value, "value"), time.time())
        with self._lock, self._writing():
            self._conn.execute("INSERT OR REPLACE INTO entries (key, kind, meta, value, created) "
                               "VALUES (?, ?, ?, ?, ?)", row)

    def add(self, key: str, value: Any, *, kind: str = "", meta: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent; True when it was stored."""
        row = (key, kind, _dumps(meta, "meta"), _dumps(value, "value"), time.time())
        with self._lock, self._writing():
            cur = self._conn.execute("INSERT OR IGNORE INTO entries (key, kind, meta, value, created) "
                                     "VALUES (?, ?, ?, ?, ?)", row)
            return cur.rowcount == 1

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of those ``keys`` that are present."""
        keys = list(keys)
        out: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                batch = keys[start:start + 500]
                marks = ",".join("?" * len(batch))
                for k, v in self._conn.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", batch):
                    out[k] = json.loads(v)
        return out

    def items(self, kind: str | None = None) -> Iterator[tuple[str, Any, Any]]:
        """(key, meta, value) of every entry (of ``kind``), oldest first."""
        sql = "SELECT key, meta, value FROM entries"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created, rowid", args).fetchall()
        for k, meta, value in rows:
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
                value = compute()
                self.put(key, value, kind=kind, meta=meta)
                return value
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """SQLite write errors (disk full, file size limit, read-only file) as an OSError naming the journal;
        the row is not written, the rows already committed stay intact."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"could not write to the journal at {self.path}: {exc} (disk full or folder not "
                          "writable? what is already recorded is intact; free space and rerun to resume)") from exc

    # ----------------------------------------------------------------------------------------- closing
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

"""One SQLite file behind one of the project's stores (the embedding cache, the rewrite cache, the eval journal).

One connection per store, behind a lock, shared by threads; WAL mode and a busy timeout for several processes.
Every write is one transaction: it is committed whole or, on any SQLite error (disk full, read-only file), rolled
back and raised as a :class:`~reasonir_rag.errors.StorageError` naming the file, with what was stored before
left intact. Opening a folder that cannot be written is a StorageError too, before any work is done.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonir_rag.errors import InvalidInputError, StorageError, UsageError

_CHUNK = 500  # keys per "IN (...)" query: well under SQLite's variable limit


class SQLiteFile:
    """``what`` names the store in messages ("embedding cache", "the journal"); ``schema`` creates its table.

    ``synchronous="FULL"`` makes a committed row survive a power cut (the journal); ``require_wal`` refuses a
    filesystem where SQLite cannot use WAL mode (several processes writing one journal need it).
    """

    def __init__(self, path: str | Path, schema: str, *, what: str, synchronous: str = "NORMAL",
                 timeout: float = 30.0, require_wal: bool = False):
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise InvalidInputError(f"synchronous must be FULL, EXTRA or NORMAL, got {synchronous!r}")
        self.path, self.what = Path(path), what
        self.lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute(schema)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"{what} at {self.path} is not usable: {exc} (is the folder writable and the disk "
                               "not full?)") from exc
        if require_wal and str(mode).lower() != "wal":
            raise UsageError(f"{self.path}: SQLite refused WAL mode (got {mode}); use a local filesystem")

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def read_keys(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """``sql`` with ``{marks}`` where the keys' placeholders go, run over ``keys`` in chunks."""
        rows: list[tuple[Any, ...]] = []
        with self.lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                rows += self._conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def write(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """``sql`` for every row, in one transaction; the number of rows it changed."""
        if not rows:
            return 0
        with self.lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                changed = self._conn.executemany(sql, [tuple(r) for r in rows]).rowcount
                self._conn.execute("COMMIT")
                return changed
            except sqlite3.Error as exc:  # nothing of this call is kept; what was stored before stays intact
                with contextlib.suppress(sqlite3.Error):
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                raise StorageError(f"could not write to {self.what} at {self.path}: {exc} (disk full or folder "
                                   "not writable? what is already stored is intact; free space and rerun)") from exc

    def count(self, table: str) -> int:
        return int(self.read(f"SELECT COUNT(*) FROM {table}")[0][0])

    def close(self) -> None:
        with self.lock:
            self._conn.close()

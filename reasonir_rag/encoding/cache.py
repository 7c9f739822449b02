"""A persistent embedding cache, so re-indexing unchanged text costs no model time.

Keys hash the encoder's identity (weights, prefixes, pooling, max length, dtype), the prefix and the
text; values are float32 vectors. SQLite gives atomic commits: a kill mid-write leaves no torn entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from reasonir_rag.errors import StorageError

logger = logging.getLogger(__name__)


def cache_key(namespace: str, prefix: str, text: str) -> str:
    h = hashlib.sha256()
    for part in (namespace, prefix, text):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class EmbeddingCache:
    """SQLite-backed map from :func:`cache_key` to a float32 vector. Safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if self.path.suffix != ".sqlite":
            self.path = self.path / "embeddings.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"embedding cache at {self.path} is not usable: {exc} (is the folder writable?)") from exc
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(keys)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, dim, vec FROM emb WHERE key IN ({marks})", chunk)
                for key, dim, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape == (dim,):  # a short blob would mean a torn write: treat as a miss
                        found[key] = vec
        return found

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        rows = [(k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # nothing of this call is kept; earlier entries stay intact
            with self._lock, contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise StorageError(f"could not write to the embedding cache at {self.path}: {exc} "
                          "(disk full or folder not writable?)") from exc

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

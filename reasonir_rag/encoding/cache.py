"""A persistent embedding cache, so re-indexing unchanged text costs no model time.

Keys hash the encoder's identity (weights, prefixes, pooling, max length, dtype), the prefix and the
text; values are float32 vectors. SQLite gives atomic commits: a kill mid-write leaves no torn entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from reasonir_rag._common.sqlite_file import SQLiteFile

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
        self._db = SQLiteFile(self.path, "CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)",
                              what="embedding cache")

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for key, dim, blob in self._db.read_keys("SELECT key, dim, vec FROM emb WHERE key IN ({marks})", list(keys)):
            vec = np.frombuffer(blob, dtype=np.float32)
            if vec.shape == (dim,):  # a short blob would mean a torn write: treat as a miss
                found[key] = vec
        return found

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        """All of ``items`` in one transaction, or none (a StorageError naming the file)."""
        rows = [(k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        self._db.write("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return self._db.count("emb")

    def close(self) -> None:
        self._db.close()

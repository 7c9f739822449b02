"""An encoder that ran elsewhere: its fingerprint and dimensions, and no model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reasonir_rag.errors import InvalidInputError, UsageError


class RecordedEncoder:
    """Stands for the encoder that made a set of vectors (Ray actors, a parquet export, another machine).

    A :class:`~reasonir_rag.index.store.ChromaStore` opened with it checks and records that encoder's fingerprint,
    so :meth:`~reasonir_rag.index.store.ChromaStore.add_embeddings` can write the vectors without the model.
    Encoding with it is an error: search such a collection with the real encoder.
    """

    def __init__(self, fingerprint: Mapping[str, Any]):
        if not isinstance(fingerprint, Mapping) or not isinstance(fingerprint.get("dim"), int):
            raise InvalidInputError(f"a fingerprint with an integer 'dim' is needed, got {fingerprint!r:.200}")
        self._fingerprint = dict(fingerprint)

    @property
    def fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    @property
    def dim(self) -> int:
        return int(self._fingerprint["dim"])

    def encode_queries(self, texts: Sequence[str] | str, *, instruction: str | None = None,
                       task: str | None = None, show_progress: bool | None = None) -> np.ndarray:
        raise UsageError(f"{self!r} has no model: search with the encoder that made the vectors")

    def encode_documents(self, texts: Sequence[str] | str, *, show_progress: bool | None = None) -> np.ndarray:
        raise UsageError(f"{self!r} has no model: write its vectors with ChromaStore.add_embeddings()")

    def __repr__(self) -> str:
        return f"RecordedEncoder(model={self._fingerprint.get('model')!r}, dim={self.dim})"

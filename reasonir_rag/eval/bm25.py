"""A BM25 lexical baseline (bm25s) with the same ``search`` shape as ChromaStore.

The paper's point is that a reasoning retriever beats lexical matching on reasoning-heavy queries; this is
the lexical side of that comparison. Scores are BM25 (not cosine); documents that share no term with the
query (score 0) are not returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.types import Document, ScoredDocument

logger = logging.getLogger(__name__)


class BM25Retriever:
    """BM25 over in-memory documents: ``search(query, k=10, *, task=None, where=None)`` like ChromaStore.

    ``stopwords`` is a bm25s language code ("en") or None; ``stemmer`` a PyStemmer language ("english")
    or None. ``method`` picks the BM25 variant (bm25s: "lucene", "robertson", "atire", "bm25l", "bm25+").
    """

    def __init__(
        self, documents: Iterable[Document], *, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
        stopwords: str | None = "en", stemmer: str | None = None,
    ):
        bm25s = require("bm25s")
        self._docs: list[Document] = list(documents)
        if not self._docs:
            raise InvalidInputError("BM25Retriever needs at least one document")
        bad = [i for i, d in enumerate(self._docs) if not isinstance(d, Document) or not isinstance(d.text, str)]
        if bad:
            raise InvalidInputError(
                f"documents must be reasonir_rag.Document objects with text; bad positions {bad[:10]}")
        self._stopwords = stopwords
        self._stemmer = require("Stemmer").Stemmer(stemmer) if stemmer else None
        self.settings = {"k1": k1, "b": b, "method": method, "stopwords": stopwords, "stemmer": stemmer}
        self._bm25s = bm25s
        self._model = bm25s.BM25(k1=k1, b=b, method=method)
        self._model.index(self._tokenize([d.text for d in self._docs]), show_progress=False)
        logger.info("BM25 index over %d documents (%s)", len(self._docs), method)

    def _tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(texts, stopwords=self._stopwords, stemmer=self._stemmer, return_ids=False,
                                    show_progress=False)

    def __len__(self) -> int:
        return len(self._docs)

    def describe(self) -> dict[str, Any]:
        return {"retriever": "bm25s", "documents": len(self._docs), **self.settings}

    def search(
        self, query: str, k: int = 10, *, task: str | None = None, instruction: str | None = None,
        where: Mapping[str, Any] | None = None, prefix_kind: str = "query",
    ) -> list[ScoredDocument]:
        """The ``k`` best documents for ``query``; ``task``, ``instruction`` and ``prefix_kind`` are accepted
        for parity with ChromaStore and ignored (BM25 has no prefixes: a HyDE passage is matched as text);
        ``where`` keeps documents whose metadata equals every given value."""
        if not isinstance(query, str):
            raise InvalidInputError(f"search() takes one query string, got {type(query).__name__}")
        return self.search_many([query], k, where=where)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, *, task: str | None = None, instruction: str | None = None,
        where: Mapping[str, Any] | None = None, prefix_kind: str = "query",
    ) -> list[list[ScoredDocument]]:
        """One result list per query, computed in one batch."""
        if isinstance(queries, str) or any(not isinstance(q, str) for q in queries):
            raise InvalidInputError("queries must be a list of strings")
        if not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if where is not None and any(isinstance(v, Mapping) or str(key).startswith("$")
                                     for key, v in where.items()):
            raise InvalidInputError("BM25Retriever supports only plain equality filters in where= ({'field': value})")
        if not queries:
            return []
        mask = None
        if where:
            mask = np.array([all(d.metadata.get(f) == v for f, v in where.items()) for d in self._docs],
                            dtype=np.float32)
        depth = min(len(self._docs), k)
        idx, scores = self._model.retrieve(self._tokenize(list(queries)), k=depth, show_progress=False,
                                           weight_mask=mask)
        out = []
        for row_idx, row_scores in zip(idx, scores, strict=True):
            hits = [ScoredDocument(self._docs[i].id, self._docs[i].text, dict(self._docs[i].metadata), float(s))
                    for i, s in zip(row_idx, row_scores, strict=True) if s > 0]
            out.append(hits)
        return out

"""A BM25 lexical baseline (bm25s) with the same ``search`` shape as ChromaStore.

The paper's point is that a reasoning retriever beats lexical matching on reasoning-heavy queries; this is
the lexical side of that comparison. Scores are BM25 (not cosine); documents that share no term with the
query (score 0) are not returned.

Two named configurations (:data:`BM25_CONFIGS`, both :class:`BM25Config`):

``"bright"``
    BRIGHT's BM25 baseline as the literature reports it (Pyserini/Anserini): Lucene's BM25 (``k1=0.9``,
    ``b=0.4``) over Lucene's English analysis with Porter stemming, lowercasing and Lucene's 33 English
    stopwords (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``); the whole query is one bag of words (a repeated
    query term counts each time, as Anserini's bag-of-words query). Approximations, since this is bm25s and
    not Lucene: the tokens are a regular expression close to Lucene's StandardTokenizer (single letters and
    digits kept; ``don't``, ``U.S``, ``3.14`` and ``1,000`` stay one token; no UAX#29 script rules, CJK runs
    are not split per ideograph), the stemmer is Snowball's Porter (PyStemmer), and document lengths are exact
    (Lucene stores them in one lossy byte).
``"bright-script"``
    BRIGHT's own script (``retrievers.py``: gensim's ``LuceneBM25Model`` behind ``SparseMatrixSimilarity``): the
    same analysis and ``k1``/``b`` as ``"bright"``, but the query is weighted as a document first (each distinct
    query term gets ``idf * tf / (tf + k1 * (1 - b + b * query_length / avgdl))``, the query length counting only
    terms the corpus has) and the score is the dot product with the documents' BM25 weights, so idf counts twice
    and a long query's repeated terms saturate. Checked against gensim itself in the tests.
``"bm25s"``
    bm25s' own defaults: ``k1=1.5``, ``b=0.75``, method "lucene", tokens of two or more word characters,
    lowercased, the same 33 stopwords, no stemming.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any

import numpy as np

from reasonir_rag._common.names import by_name
from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.types import Document, ScoredDocument

logger = logging.getLogger(__name__)

#: Lucene's ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`` (also bm25s' "en" list).
LUCENE_ENGLISH_STOPWORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with",
)
#: bm25s' default token pattern (scikit-learn's CountVectorizer): two or more word characters.
BM25S_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
#: Close to Lucene's StandardTokenizer: runs of word characters, joined across an apostrophe or a full stop
#: (``don't``, ``U.S``, ``3.14``) and across a comma between digits (``1,000``).
LUCENE_TOKEN_PATTERN = r"(?u)\w+(?:(?:['\u2019.]|(?<=\d),(?=\d))\w+)*"
_POSSESSIVE = re.compile(r"['\u2019][sS]$")


@dataclass(frozen=True)
class BM25Config:
    """Everything that decides a BM25 ranking: the scorer (``method``, ``k1``, ``b``: bm25s' variants
    "lucene", "robertson", "atire", "bm25l", "bm25+") and the analysis applied to documents and queries alike
    (``token_pattern``, ``lowercase``, ``possessive``: drop a trailing 's as Lucene's EnglishPossessiveFilter,
    ``stopwords``, ``stemmer``: a PyStemmer algorithm such as "porter", or None)."""

    name: str
    k1: float
    b: float
    method: str = "lucene"
    token_pattern: str = BM25S_TOKEN_PATTERN
    lowercase: bool = True
    possessive: bool = False
    stopwords: tuple[str, ...] = LUCENE_ENGLISH_STOPWORDS
    stemmer: str | None = None
    query_weighting: str = "bag"  # "bag": every query token adds its score (Anserini); "bm25": BRIGHT's script

    def __post_init__(self) -> None:
        if self.query_weighting not in ("bag", "bm25"):
            raise InvalidInputError(f"query_weighting must be 'bag' or 'bm25', got {self.query_weighting!r}")
        if self.query_weighting == "bm25" and self.method != "lucene":
            raise InvalidInputError("query_weighting='bm25' is gensim's LuceneBM25Model: it needs method='lucene'")

    def describe(self) -> dict[str, Any]:
        """Plain JSON: the name and every setting (the stopwords by name when they are Lucene's)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["stopwords"] = ("lucene-english" if self.stopwords == LUCENE_ENGLISH_STOPWORDS
                            else list(self.stopwords))
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The analysed tokens of each text: split, lowercased, possessives and stopwords dropped, stemmed."""
        split = re.compile(self.token_pattern).findall
        stop = frozenset(self.stopwords)
        rows = []
        for text in texts:
            tokens = split(text.lower() if self.lowercase else text)
            if self.possessive:
                tokens = [_POSSESSIVE.sub("", t) for t in tokens]
            rows.append([t for t in tokens if t and t not in stop])
        if self.stemmer is None:
            return rows
        vocab = sorted({t for row in rows for t in row})
        stems = dict(zip(vocab, _stemmer(self.stemmer).stemWords(vocab), strict=True))
        return [[stems[t] for t in row] for row in rows]


@cache
def _stemmer(algorithm: str) -> Any:
    stemmer_module = require("Stemmer")
    if algorithm not in stemmer_module.algorithms():
        raise InvalidInputError(f"unknown stemmer {algorithm!r}; PyStemmer has {stemmer_module.algorithms()}")
    return stemmer_module.Stemmer(algorithm)


BRIGHT = BM25Config("bright", k1=0.9, b=0.4, token_pattern=LUCENE_TOKEN_PATTERN, possessive=True,
                    stemmer="porter")
BRIGHT_SCRIPT = replace(BRIGHT, name="bright-script", query_weighting="bm25")
BM25S_DEFAULTS = BM25Config("bm25s", k1=1.5, b=0.75)
#: The named configurations, for ``BM25Retriever(config=NAME)`` and ``eval retrieval --bm25 NAME``.
BM25_CONFIGS: dict[str, BM25Config] = {c.name: c for c in (BRIGHT, BRIGHT_SCRIPT, BM25S_DEFAULTS)}


def bm25_config(config: str | BM25Config) -> BM25Config:
    """A :class:`BM25Config` itself, or the one of that name in :data:`BM25_CONFIGS`."""
    return by_name(BM25_CONFIGS, config, "BM25 configuration")


class BM25Retriever:
    """BM25 over in-memory documents: ``search(query, k=10, *, task=None, where=None)`` like ChromaStore.

    ``config`` is a :class:`BM25Config` or the name of one in :data:`BM25_CONFIGS` ("bright": BRIGHT's
    Lucene recipe; "bm25s", the default: bm25s' own defaults). ``fingerprint`` names the configuration, its
    settings and the corpus (count and content hash): the evaluator's journal keys retrievals by it.
    """

    def __init__(self, documents: Iterable[Document], *, config: str | BM25Config = "bm25s"):
        bm25s = require("bm25s")
        self.config = bm25_config(config)
        self._docs: list[Document] = list(documents)
        if not self._docs:
            raise InvalidInputError("BM25Retriever needs at least one document")
        bad = [i for i, d in enumerate(self._docs) if not isinstance(d, Document) or not isinstance(d.text, str)]
        if bad:
            raise InvalidInputError(
                f"documents must be reasonir_rag.Document objects with text; bad positions {bad[:10]}")
        digest = hashlib.sha256()
        for d in self._docs:
            digest.update(f"{d.id}\0{hashlib.sha256(d.text.encode()).hexdigest()}\n".encode())
        self._corpus_sha256 = digest.hexdigest()
        self._model = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        corpus_tokens = self.config.tokenize([d.text for d in self._docs])
        self._avgdl = sum(len(row) for row in corpus_tokens) / len(corpus_tokens)
        self._model.index(corpus_tokens, show_progress=False)
        logger.info("BM25 index over %d documents (%s: %s, k1=%s, b=%s)", len(self._docs), self.config.name,
                    self.config.method, self.config.k1, self.config.b)

    def __len__(self) -> int:
        return len(self._docs)

    def __repr__(self) -> str:
        c = self.config
        return (f"BM25Retriever(config={c.name!r}, method={c.method!r}, k1={c.k1}, b={c.b}, "
                f"stemmer={c.stemmer!r}, documents={len(self._docs)})")

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.describe()

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"retriever": "bm25s", "config": self.config.name, "documents": len(self._docs),
                "corpus_sha256": self._corpus_sha256, **{k: v for k, v in self.config.describe().items()
                                                        if k != "name"}}

    def describe(self) -> dict[str, Any]:
        return self.fingerprint

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
        tokens = self.config.tokenize(list(queries))
        if self.config.query_weighting == "bm25":
            idx, scores = self._retrieve_weighted(tokens, depth, mask)
        else:
            idx, scores = self._model.retrieve(tokens, k=depth, show_progress=False, weight_mask=mask)
        out = []
        for row_idx, row_scores in zip(idx, scores, strict=True):
            hits = [ScoredDocument(self._docs[i].id, self._docs[i].text, dict(self._docs[i].metadata), float(s))
                    for i, s in zip(row_idx, row_scores, strict=True) if s > 0]
            out.append(hits)
        return out

    def _retrieve_weighted(self, queries: list[list[str]], depth: int,
                           mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``depth`` by BRIGHT's script: the query's own BM25 weights dotted with the documents' (bm25s'
        "lucene" document scores are gensim's ``LuceneBM25Model`` weights: the same idf and saturation)."""
        c, vocab, index = self.config, self._model.vocab_dict, self._model.scores
        data, indices, indptr = index["data"], index["indices"], index["indptr"]
        n_docs = len(self._docs)
        all_idx = np.empty((len(queries), depth), dtype=np.int64)
        all_scores = np.empty((len(queries), depth), dtype=np.float64)
        for row, query in enumerate(queries):
            counts = Counter(vocab[t] for t in query if t in vocab)
            norm = c.k1 * (1 - c.b + c.b * sum(counts.values()) / self._avgdl)
            scores = np.zeros(n_docs, dtype=np.float64)
            for term, tf in counts.items():
                lo, hi = indptr[term], indptr[term + 1]
                if hi > lo:  # df is the column's length; a term of the vocabulary alone (bm25s' "") has none
                    idf = np.log((n_docs + 1.0) / (hi - lo + 0.5))
                    scores[indices[lo:hi]] += idf * tf / (tf + norm) * data[lo:hi]
            if mask is not None:
                scores *= mask
            top = np.argsort(-scores, kind="stable")[:depth]
            all_idx[row], all_scores[row] = top, scores[top]
        return all_idx, all_scores

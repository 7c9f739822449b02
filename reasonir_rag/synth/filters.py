"""Checks the recipe does not make: a query must not copy its passage, point at it, or repeat another query.

Each check is lexical and cheap, so every kept query carries the numbers that let it pass (:class:`QueryCheck`)
and every rejected one the reason. Words are lowercased runs of letters and digits.

- copying: the share of the query's word ``n``-grams (default 5) that occur in the passage; a query lifted from
  the passage scores near 1, a paraphrase near 0.
- pointing at the passage: "the passage", "this text", "according to the author", ... (the recipe forbids it).
- near-duplicates: Jaccard similarity of word-trigram sets against every query kept before it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from reasonir_rag.errors import InvalidInputError

_WORD = re.compile(r"[^\W_]+")
_POINTS_AT_PASSAGE = re.compile(
    r"\b(?:the|this|that|above|given|provided|following|attached)\s+(?:passage|text|document|excerpt|article|"
    r"paragraph|reading)s?\b|\baccording to the (?:author|passage|text|document)\b|\bthe author\b",
    re.IGNORECASE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    """The ``n``-grams of ``tokens`` (the whole sequence when it is shorter than ``n``)."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def copy_overlap(query: str, passage: str, *, n: int = 5) -> float:
    """Share of the query's word ``n``-grams found in the passage (0: none copied, 1: all of it)."""
    grams = ngrams(words(query), n)
    if not grams:
        return 0.0
    return len(grams & ngrams(words(passage), n)) / len(grams)


def similarity(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


@dataclass(frozen=True)
class FilterSettings:
    """Thresholds: reject above ``max_copy_overlap`` (share of ``copy_ngram``-grams), under ``min_words``, and at
    or above ``max_duplicate_similarity`` (trigram Jaccard with a kept query)."""

    max_copy_overlap: float = 0.5
    copy_ngram: int = 5
    min_words: int = 8
    max_duplicate_similarity: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_copy_overlap <= 1.0 or not 0.0 < self.max_duplicate_similarity <= 1.0:
            raise InvalidInputError("max_copy_overlap must be in [0, 1] and max_duplicate_similarity in (0, 1]")
        if self.copy_ngram < 1 or self.min_words < 1:
            raise InvalidInputError("copy_ngram and min_words must be >= 1")


@dataclass(frozen=True)
class QueryCheck:
    """Why a query passed (or the ``reason`` it did not): the measured values beside their thresholds."""

    words: int
    copy_overlap: float
    points_at_passage: bool
    nearest_kept: str | None
    nearest_similarity: float
    reason: str | None = None

    def to_dict(self, settings: FilterSettings) -> dict[str, Any]:
        return {**asdict(self), "copy_overlap": round(self.copy_overlap, 4),
                "nearest_similarity": round(self.nearest_similarity, 4), "thresholds": asdict(settings)}


class QueryFilter:
    """Checks queries in order; a kept query is remembered, so later near-copies of it are rejected."""

    def __init__(self, settings: FilterSettings | None = None):
        self.settings = settings or FilterSettings()
        self._kept: list[tuple[str, set[tuple[str, ...]]]] = []

    def passage_problem(self, query: str, passage: str) -> str | None:
        """Why ``query`` is unusable for ``passage`` whatever else is kept (length, copying, pointing), or None;
        the calls retry a seed whose every query has one."""
        return self._passage_checks(query, passage)[2]

    def _passage_checks(self, query: str, passage: str) -> tuple[float, bool, str | None]:
        s = self.settings
        n_words = len(words(query))
        overlap = copy_overlap(query, passage, n=s.copy_ngram)
        points = bool(_POINTS_AT_PASSAGE.search(query))
        reason = None
        if n_words < s.min_words:
            reason = f"too short ({n_words} words < {s.min_words})"
        elif overlap > s.max_copy_overlap:
            reason = f"copies the passage ({overlap:.2f} of its {s.copy_ngram}-grams > {s.max_copy_overlap})"
        elif points:
            reason = "refers to the passage itself"
        return overlap, points, reason

    def check(self, query: str, passage: str, query_id: str) -> QueryCheck:
        s = self.settings
        tokens = words(query)
        overlap, points, reason = self._passage_checks(query, passage)
        shingles = ngrams(tokens, 3)
        nearest, nearest_sim = None, 0.0
        for other_id, other in self._kept:
            sim = similarity(shingles, other)
            if sim > nearest_sim:
                nearest, nearest_sim = other_id, sim
        if reason is None and nearest_sim >= s.max_duplicate_similarity:
            reason = f"near-duplicate of {nearest} (trigram Jaccard {nearest_sim:.2f} >= {s.max_duplicate_similarity})"
        if reason is None:
            self._kept.append((query_id, shingles))
        return QueryCheck(len(tokens), overlap, points, nearest, nearest_sim, reason)

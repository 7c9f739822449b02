"""Multiple-choice benchmarks as plain :class:`Question` lists, and the seeded selection shared by all of them.

The loaders: :func:`reasonir_rag.eval.mmlu.load_mmlu` and :func:`reasonir_rag.eval.gpqa.load_gpqa`.
Malformed records are skipped, logged and listed in :attr:`Dataset.problems` (file and line or record);
a structural problem (a missing column, a wrong password, no usable record) raises a ValueError instead.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"
_MAX_LOGGED_PROBLEMS = 5


@dataclass(frozen=True)
class Question:
    """One multiple-choice question. Text fields stay out of ``repr`` so logs never show them (GPQA)."""

    id: str
    subject: str
    question: str = field(repr=False)
    choices: tuple[str, ...] = field(repr=False)
    answer_index: int
    metadata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))
        if not 2 <= len(self.choices) <= len(LETTERS):
            raise InvalidInputError(f"question {self.id}: needs 2..{len(LETTERS)} choices, got {len(self.choices)}")
        if not 0 <= self.answer_index < len(self.choices):
            raise InvalidInputError(f"question {self.id}: answer_index {self.answer_index} is outside "
                             f"0..{len(self.choices) - 1}")

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer_index]

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]


@dataclass
class Dataset:
    """Questions plus what a report needs to reproduce them (source, fingerprint, seed, skipped records)."""

    name: str
    split: str
    questions: list[Question]
    source: str
    fingerprint: str
    problems: list[str] = field(default_factory=list)
    seed: int | None = None
    selection: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)

    def __getitem__(self, i: int) -> Question:
        return self.questions[i]

    @property
    def subjects(self) -> list[str]:
        return sorted({q.subject for q in self.questions})

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (no question text) for the run record."""
        counts: dict[str, int] = {}
        for q in self.questions:
            counts[q.subject] = counts.get(q.subject, 0) + 1
        return {"name": self.name, "split": self.split, "source": self.source, "fingerprint": self.fingerprint,
                "n_questions": len(self.questions), "skipped_records": len(self.problems), "seed": self.seed,
                "selection": self.selection, "subjects": dict(sorted(counts.items())),
                "question_ids_sha256": sha256_hex("\n".join(q.id for q in self.questions).encode())}


# --------------------------------------------------------------------------------------------- selection
def _norm_subject(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def select_questions(
    questions: Sequence[Question], *, subjects: Iterable[str] | None = None, sample: int | None = None,
    per_subject: int | None = None, seed: int = 0,
) -> list[Question]:
    """Filter by subject, then sample ``per_subject`` per subject and/or ``sample`` overall, reproducibly.

    Sampling keeps the original order. Each subject draws from its own seeded generator, so adding a
    subject does not change which questions another subject gets.
    """
    pool = list(questions)
    if isinstance(subjects, str):
        subjects = [subjects]
    if subjects is not None:
        wanted = {_norm_subject(s) for s in subjects}
        known = {_norm_subject(q.subject) for q in pool}
        unknown = sorted(wanted - known)
        if unknown:
            raise InvalidInputError(f"unknown subject(s) {unknown}; available: {sorted(known)}")
        pool = [q for q in pool if _norm_subject(q.subject) in wanted]
    for name, value in (("sample", sample), ("per_subject", per_subject)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    if per_subject is not None:
        by_subject: dict[str, list[int]] = {}
        for i, q in enumerate(pool):
            by_subject.setdefault(q.subject, []).append(i)
        keep: set[int] = set()
        for subject, idx in by_subject.items():
            rng = random.Random(f"{seed}:{subject}")
            keep.update(rng.sample(idx, min(per_subject, len(idx))))
        pool = [q for i, q in enumerate(pool) if i in keep]
    if sample is not None and sample < len(pool):
        keep_idx = set(random.Random(seed).sample(range(len(pool)), sample))
        pool = [q for i, q in enumerate(pool) if i in keep_idx]
    return pool


def finish_loading(dataset: Dataset, subjects, sample, per_subject, seed) -> Dataset:
    """What every loader ends with: log the skipped records, refuse an empty dataset, apply the seeded selection."""
    subjects = [subjects] if isinstance(subjects, str) else (list(subjects) if subjects is not None else None)
    if dataset.problems:
        shown = "; ".join(dataset.problems[:_MAX_LOGGED_PROBLEMS])
        more = len(dataset.problems) - _MAX_LOGGED_PROBLEMS
        logger.warning("%s: skipped %d malformed record(s): %s%s", dataset.name, len(dataset.problems), shown,
                       f" (and {more} more)" if more > 0 else "")
    if not dataset.questions:
        raise InvalidInputError(f"{dataset.name}: no usable question in {dataset.source}"
                         + (f"; problems: {'; '.join(dataset.problems[:_MAX_LOGGED_PROBLEMS])}"
                            if dataset.problems else ""))
    dataset.questions = select_questions(dataset.questions, subjects=subjects, sample=sample,
                                         per_subject=per_subject, seed=seed)
    dataset.seed = seed
    dataset.selection = {"subjects": sorted(subjects) if subjects is not None else None, "sample": sample,
                         "per_subject": per_subject}
    return dataset


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""Length-sorted batches under a token budget (the sentence-transformers idea, without its file)."""

from __future__ import annotations

from collections.abc import Sequence

from reasonir_rag.errors import InvalidInputError


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Group indices longest-first so that ``rows * longest`` (the padded size) stays within ``max_tokens``.

    Every index appears exactly once; a single item longer than the budget still gets its own batch.
    """
    if max_tokens < 1 or max_batch_size < 1:
        raise InvalidInputError("max_tokens and max_batch_size must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * longest > max_tokens or len(current) >= max_batch_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches

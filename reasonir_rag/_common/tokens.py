"""Token counts where no tokenizer is at hand."""

from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: one token per 3 UTF-8 bytes, rounded up."""
    return max(1, -(-len(text.encode("utf-8")) // 3)) if text else 0

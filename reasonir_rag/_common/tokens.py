"""Token decisions every layer shares: the tokenizer's own special tokens, counting, and cutting a text to N
tokens (exactly, on a token boundary of the original text, without tokenizing a huge text whole), plus the
estimate used where no tokenizer is at hand."""

from __future__ import annotations

from typing import Any

# characters tokenized per wanted token before a cut; doubled until the window holds enough tokens
_CHARS_PER_TOKEN = 8


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: one token per 3 UTF-8 bytes, rounded up."""
    return max(1, -(-len(text.encode("utf-8")) // 3)) if text else 0


def cut_by_estimate(text: str, max_tokens: int) -> str:
    """The start of ``text`` within ``max_tokens`` by :func:`estimate_tokens` (whole characters only)."""
    if max_tokens <= 0:
        return ""
    data = text.encode("utf-8")
    return text if len(data) <= 3 * max_tokens else data[: 3 * max_tokens].decode("utf-8", "ignore")


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer adds around every text: (head, tail), e.g. ([BOS], []) for Llama, ([CLS], [SEP]) for
    BERT, ([], []) for Qwen2.5 and SmolLM2."""
    with_specials = tokenizer("x", add_special_tokens=True)["input_ids"]
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    start = next((i for i in range(len(with_specials)) if with_specials[i : i + len(plain)] == plain), 0)
    return list(with_specials[:start]), list(with_specials[start + len(plain) :])


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """The ids of ``text`` alone (no special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _window(tokenizer: Any, text: str, min_tokens: int, **options: Any) -> tuple[str, Any]:
    """The shortest start of ``text`` (``8 * min_tokens`` characters, doubled) that holds ``min_tokens`` tokens, or
    the whole text, with its encoding."""
    window = max(64, _CHARS_PER_TOKEN * min_tokens)
    while True:
        piece = text[:window]
        enc = tokenizer(piece, add_special_tokens=False, **options)
        if len(piece) == len(text) or len(enc["input_ids"]) >= min_tokens:
            return piece, enc
        window *= 2


def bounded_text(tokenizer: Any, text: str, max_tokens: int) -> str:
    """A start of ``text`` whose first ``max_tokens`` tokens are the whole text's (eight tokens to spare: only the
    word at a cut tokenizes differently), or the text itself when it is short: what a truncating tokenizer call
    needs, so a 50 MB text costs what its first tokens cost."""
    if len(text) <= _CHARS_PER_TOKEN * (max_tokens + 8):
        return text
    return _window(tokenizer, text, max_tokens + 8)[0]


def cut_to_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """The longest start of ``text`` within ``max_tokens`` tokens, cut on a token boundary of the original (and
    re-tokenizing within ``max_tokens``).

    Only a window of the text is tokenized (``8 * max_tokens`` characters, doubled while it holds too few tokens),
    so cutting a 50 MB text to 512 tokens costs what 512 tokens cost. The window must hold two tokens more than
    kept: the last token of a window may be a fragment of a longer one.
    """
    if max_tokens <= 0:
        return ""
    piece, enc = _window(tokenizer, text, max_tokens + 2, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if len(piece) == len(text) and len(ids) <= max_tokens:
        return text
    keep = max_tokens
    cut = text[: offsets[keep - 1][1]]
    # a cut inside a multi-byte character can re-tokenize into more pieces: step back until it fits
    while keep > 1 and len(token_ids(tokenizer, cut)) > max_tokens:
        keep -= 1
        cut = text[: offsets[keep - 1][1]]
    return cut

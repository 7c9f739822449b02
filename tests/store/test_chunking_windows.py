"""The chunker tokenizes a long text in bounded pieces: no tokenizer call sees more than ``WINDOW_CHARS``
characters, and the chunks equal those of one whole-text call (real tokenizers: MiniLM's WordPiece, Llama-3's
byte-level BPE, tiktoken cl100k_base, the regex splitter)."""

from __future__ import annotations

import itertools
import random

import pytest

from reasonir_rag.index import chunking
from reasonir_rag.index.chunking import WINDOW_CHARS, chunk_text, token_spans_for, window_cut
from tests.store.test_chunking import PARAGRAPHS, check_invariants


def _mixed_text(n_words: int, seed: int = 0) -> str:
    """Words of PARAGRAPHS (accents, CJK, emoji, punctuation) joined by spaces, newlines, blank lines, tabs."""
    rng = random.Random(seed)
    words = PARAGRAPHS.split(" ")
    glue = [" ", " ", " ", ".\n\n", "\n", "  ", "\t", "_ ", "!\n", "1 "]
    return "".join(rng.choice(words) + rng.choice(glue) for _ in range(n_words))


def _tokenizer(which, minilm_encoder, tiny_encoder):
    return {"minilm": minilm_encoder.tokenizer, "llama": tiny_encoder.tokenizer, "tiktoken": None,
            "regex": "regex"}[which]


def test_a_multi_megabyte_text_is_tokenized_in_bounded_pieces(tiny_encoder):
    text = _mixed_text(450_000)  # ~2.7 MB
    assert len(text) > 2.5 * WINDOW_CHARS
    spans = token_spans_for(tiny_encoder.tokenizer)  # the real Llama-3 tokenizer, noting what each call is given
    seen: list[int] = []

    def recording(piece: str):
        seen.append(len(piece))
        return spans(piece)

    chunks = chunk_text(text, tokenizer=recording, chunk_tokens=512, overlap=64)
    assert max(seen) <= WINDOW_CHARS < len(text) // 2
    assert sum(1 for n in seen if n > 100_000) == 3  # three windows, then one small call per chunk
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(a.start < b.start <= a.end for a, b in itertools.pairwise(chunks))
    for c in chunks[:: max(1, len(chunks) // 40)]:  # exact offsets, and each chunk's own tokens within budget
        assert text[c.start : c.end] == c.text and len(spans(c.text)) <= 512


@pytest.mark.parametrize("which", ["minilm", "llama", "tiktoken", "regex"])
def test_windowed_chunks_equal_the_whole_text_chunks(which, minilm_encoder, tiny_encoder, monkeypatch):
    tokenizer = _tokenizer(which, minilm_encoder, tiny_encoder)
    text = _mixed_text(12_000, seed=3)  # ~70k characters: small enough to tokenize whole and compare
    spans = token_spans_for(tokenizer)
    whole_starts = chunking.token_starts(text, spans)
    whole = chunk_text(text, tokenizer=tokenizer, chunk_tokens=64, overlap=8)
    monkeypatch.setattr(chunking, "WINDOW_CHARS", 2_000)  # ~35 windows
    assert chunking.token_starts(text, spans) == whole_starts
    windowed = chunk_text(text, tokenizer=tokenizer, chunk_tokens=64, overlap=8)
    assert windowed == whole
    check_invariants(text, windowed, spans, 64, 8)


def test_a_text_without_spaces_is_cut_at_the_window_and_keeps_its_guarantees(tiny_encoder, monkeypatch):
    """The documented difference: no whitespace to cut before, so the window ends mid-run; starts near the cut
    may differ from the whole text's, yet offsets, coverage and budgets hold."""
    text = "中文的文本没有空格🧪🔬éè" * 400
    monkeypatch.setattr(chunking, "WINDOW_CHARS", 500)
    spans = token_spans_for(tiny_encoder.tokenizer)
    chunks = chunk_text(text, tokenizer=tiny_encoder.tokenizer, chunk_tokens=40, overlap=5)
    check_invariants(text, chunks, spans, 40, 5)
    assert all(len(spans(c.text)) <= 40 for c in chunks)


def test_window_cut_prefers_whitespace_after_a_letter_or_digit():
    text = "alpha beta.\n\ngamma_ delta 42 x"
    assert window_cut(text, 0, 100) == len(text)
    # ".\n\n" is one pre-token in Llama-3 and "_ " would be too: the cut goes back to "alpha| beta"
    assert window_cut(text, 0, 24) == len("alpha")
    assert window_cut(text, 0, 29) == len("alpha beta.\n\ngamma_ delta 42")
    assert window_cut(text, 6, 18) == len("alpha beta.\n\ngamma_")  # no safe place: after any non-space
    assert window_cut("abc!!! def", 0, 8) == 6  # no letter before a space: after any non-space character
    assert window_cut("x" * 50, 10, 20) == 30  # no whitespace at all: at the window's end

"""The chunker: exact offsets, full coverage, the overlap bound, metadata; with real tokenizers."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonir_rag.index import chunking
from reasonir_rag.index.chunking import Chunk, chunk_documents, chunk_text, regex_spans, token_spans_for
from reasonir_rag.types import Document

PARAGRAPHS = (
    "Enzymes are catalysts. They lower the activation energy of reactions!\n\n"
    "A buffer solution resists changes in pH. It holds a weak acid and its conjugate base.\n\n"
    "Newton’s third law says forces come in pairs — push a wall and it pushes back (equally). "
    "Émile measured 3.5 m/s² at 20 °C; the β-decay result was 中文 text and emoji 🧪🔬 too.\n"
)


def check_invariants(text: str, chunks: list[Chunk], spans_of, chunk_tokens: int, overlap: int) -> None:
    """Offsets exact, whole text covered, windows within chunk_tokens, neighbours share <= overlap tokens."""
    assert chunks, "non-empty text gave no chunks"
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    token_starts = [s for s, _ in spans_of(text)]
    for i, c in enumerate(chunks):
        assert c.index == i
        assert text[c.start : c.end] == c.text and c.end > c.start
        inside = [s for s in token_starts if c.start <= s < c.end]
        assert len(inside) <= chunk_tokens + 1  # +1: a byte-level token may share its start with the next
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start <= a.end, "a gap (lost text) or no progress between chunks"
        shared = [s for s in token_starts if b.start <= s < a.end]
        assert len(shared) <= overlap + 1


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("abc xyz.!?\n\t,é中🧪")), min_size=1, max_size=600),
    chunk_tokens=st.integers(1, 40),
    overlap_frac=st.floats(0, 0.99),
)
def test_invariants_hold_for_any_text_regex_tokens(text, chunk_tokens, overlap_frac):
    overlap = min(chunk_tokens - 1, int(chunk_tokens * overlap_frac))
    chunks = chunk_text(text, tokenizer="regex", chunk_tokens=chunk_tokens, overlap=overlap)
    if not text.strip():
        assert chunks == []
        return
    tokens = [s for s, _ in regex_spans(text)]
    for a, b in itertools.pairwise(chunks):  # with regex tokens the bound is exact
        assert len([s for s in tokens if b.start <= s < a.end]) <= overlap
    for c in chunks:
        assert len([s for s in tokens if c.start <= s < c.end]) <= chunk_tokens
    check_invariants(text, chunks, regex_spans, chunk_tokens, overlap)


@pytest.mark.parametrize("which", ["minilm", "llama"])
def test_invariants_with_real_hf_tokenizers(which, minilm_encoder, tiny_encoder):
    tokenizer = (minilm_encoder if which == "minilm" else tiny_encoder).tokenizer
    text = PARAGRAPHS * 12
    spans = token_spans_for(tokenizer)
    chunks = chunk_text(text, tokenizer=tokenizer, chunk_tokens=48, overlap=8)
    assert len(chunks) > 5
    check_invariants(text, chunks, spans, 48, 8)
    # cuts move to a word boundary (this text has one in every window's last fifth), often a sentence end
    for c in chunks[:-1]:
        assert c.text[-1].isspace() or text[c.end].isspace(), (c.text[-20:], text[c.end : c.end + 20])
    sentence_ends = [c for c in chunks[:-1] if c.text.rstrip()[-1] in ".!" or "\n" in text[c.end - 1 : c.end + 1]]
    assert len(sentence_ends) >= len(chunks) // 3


def test_default_tokenizer_is_offline_tiktoken():
    spans = chunking.default_spans()
    assert spans is not regex_spans
    encoding = chunking.tiktoken_encoding("cl100k_base")
    text = PARAGRAPHS * 3
    assert len(spans(text)) == len(encoding.encode_ordinary(text))
    chunks = chunk_text(text, chunk_tokens=30, overlap=5)
    check_invariants(text, chunks, spans, 30, 5)


def test_regex_fallback_when_tiktoken_is_missing(monkeypatch, caplog):
    def missing(name="cl100k_base"):  # stands in for a machine without tiktoken (it is installed here)
        raise ImportError("tiktoken is not installed")

    monkeypatch.setattr(chunking, "tiktoken_encoding", missing)
    monkeypatch.setattr(chunking, "_warned_regex", False)
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.chunking"):
        first = chunk_text(PARAGRAPHS, chunk_tokens=10, overlap=2)
        chunk_text(PARAGRAPHS, chunk_tokens=10, overlap=2)
    assert caplog.text.count("regex words") == 1
    assert first == chunk_text(PARAGRAPHS, tokenizer="regex", chunk_tokens=10, overlap=2)


def test_short_and_empty_texts():
    assert chunk_text("") == [] and chunk_text(" \n\t ") == []
    assert chunk_text("  one short text  ", tokenizer="regex") == [Chunk("  one short text  ", 0, 18, 0)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"chunk_tokens": 0}, "chunk_tokens"),
        ({"chunk_tokens": 10, "overlap": 10}, "overlap"),
        ({"chunk_tokens": 10, "overlap": -1}, "overlap"),
        ({"chunk_tokens": 2.5}, "chunk_tokens"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        chunk_text("some text", tokenizer="regex", **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="needs a str"):
        chunk_text(None)
    with pytest.raises(TypeError, match="unsupported tokenizer"):
        chunk_text("text", tokenizer=42)
    with pytest.raises(TypeError, match="Document"):
        chunk_documents(["plain string"])


def test_chunk_documents_keeps_metadata_and_names_chunks(caplog):
    docs = [
        Document("book/ch1", PARAGRAPHS * 4, {"book": "Chemistry 2e", "page": 3}),
        Document("empty", "   ", {}),
        Document("short", "A short one.", {"book": "Physics"}),
    ]
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.chunking"):
        chunks = chunk_documents(docs, tokenizer="regex", chunk_tokens=40, overlap=5)
    long_ones = [c for c in chunks if c.metadata["source_id"] == "book/ch1"]
    assert len(long_ones) > 3
    for i, c in enumerate(long_ones):
        assert c.id == f"book/ch1#{i}"
        assert c.metadata["book"] == "Chemistry 2e" and c.metadata["page"] == 3
        assert c.metadata["chunk_index"] == i
        assert docs[0].text[c.metadata["char_start"] : c.metadata["char_end"]] == c.text
    assert chunks[-1].id == "short#0" and chunks[-1].text == "A short one."
    assert "empty" in caplog.text
    assert docs[0].metadata == {"book": "Chemistry 2e", "page": 3}  # the source is not modified


def test_a_million_characters_chunk_quickly_and_exactly(minilm_encoder):
    text = ("The enzyme lowers the activation energy. " * 25_000)[:1_000_000]
    chunks = chunk_text(text, tokenizer=minilm_encoder.tokenizer, chunk_tokens=256, overlap=32)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(text[c.start : c.end] == c.text for c in chunks[:: max(1, len(chunks) // 50)])
    assert all(a.start < b.start <= a.end for a, b in itertools.pairwise(chunks))

"""Token-aware chunking with exact character offsets, so every chunk points back into its source.

Chunks are windows of ``chunk_tokens`` tokens; consecutive windows share ``overlap`` tokens. A window
ends at a token start (or the end of the text) and the next begins at a token start, so the chunks
cover the whole text and ``text[chunk.start:chunk.end] == chunk.text`` always holds. Within the last
~20% of a window the cut moves back to a paragraph, sentence or word boundary when one is there.
Budgets hold for the chunk's text tokenized ON ITS OWN (what the encoder sees): a cut inside a word or a
multi-byte character, which would re-tokenize into more pieces, moves back until the chunk fits.

Tokens come from the encoder's HF fast tokenizer when given (its offset mapping), else from tiktoken
``cl100k_base`` read offline from llama-index-core's bundled cache, else from a regex word splitter
(the documented fallback, logged once).

Memory stays bounded for any text: a long text is tokenized in pieces of about ``WINDOW_CHARS`` characters,
each cut just before a whitespace run that follows a letter or digit (where the byte-level BPE of Llama-3 and
Qwen, tiktoken, WordPiece and the regex splitter all start a new token, so the token starts equal the whole
text's), and only the token starts are kept, 8 bytes each. Where a piece has no such place (or with tokenizers that
treat a text's start specially, SentencePiece's "▁"), the starts near the cut may differ from the whole text's by a
token or two: only where a chunk ends can move, and budgets still hold (each chunk is re-tokenized on its own).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reasonir_rag.errors import InvalidInputError, MissingDependencyError
from reasonir_rag.index.records import SourcedDocument
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

Spans = list[tuple[int, int]]
_WORDS = re.compile(r"\w+|[^\w\s]")
_CLOSERS = "\"'”’)]"
WINDOW_CHARS = 1_000_000  # characters tokenized per call: ~250k tokens of offsets, whatever the text's size
_SAFE_CUT = re.compile(r"[^\W_](?=\s)")  # a letter or digit before whitespace: the pre-tokenizers start anew
_ANY_CUT = re.compile(r"\S(?=\s)")
_warned_regex = False


@dataclass(frozen=True)
class Chunk:
    """A piece of a text: ``text == source[start:end]``; ``index`` counts chunks from 0."""

    text: str
    start: int
    end: int
    index: int


def regex_spans(text: str) -> Spans:
    """Words and single punctuation marks: the fallback when no real tokenizer is available."""
    return [m.span() for m in _WORDS.finditer(text)]


def _tiktoken_cache_dir() -> Path | None:
    """llama-index-core ships cl100k_base; find it without importing llama_index.core (slow)."""
    try:
        spec = importlib.util.find_spec("llama_index.core")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "_static" / "tiktoken_cache"
        if folder.is_dir():
            return folder
    return None


@lru_cache(maxsize=4)
def tiktoken_encoding(name: str = "cl100k_base") -> Any:
    """A tiktoken encoding loaded offline (``TIKTOKEN_CACHE_DIR`` points at llama-index-core's copy)."""
    try:
        import tiktoken
    except ImportError as exc:
        raise MissingDependencyError("tiktoken is not installed: pip install tiktoken") from exc
    folder = _tiktoken_cache_dir()
    if folder is None or os.environ.get("TIKTOKEN_CACHE_DIR"):
        return tiktoken.get_encoding(name)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    try:
        return tiktoken.get_encoding(name)
    finally:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)


def _tiktoken_spans(encoding: Any) -> Callable[[str], Spans]:
    def spans(text: str) -> Spans:
        tokens = encoding.encode_ordinary(text)
        _, starts = encoding.decode_with_offsets(tokens)
        ends = [*starts[1:], len(text)] if starts else []
        return list(zip(starts, ends, strict=True))

    return spans


def _hf_spans(tokenizer: Any) -> Callable[[str], Spans]:
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidInputError(
            f"chunking needs a fast (Rust) HF tokenizer for character offsets; got {type(tokenizer).__name__}"
        )

    def spans(text: str) -> Spans:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]

    return spans


def default_spans() -> Callable[[str], Spans]:
    """tiktoken cl100k_base when it loads offline, else the regex splitter (logged once)."""
    global _warned_regex
    try:
        return _tiktoken_spans(tiktoken_encoding("cl100k_base"))
    except Exception as exc:  # any failure to load (missing package, no cached file offline)
        if not _warned_regex:
            logger.warning(
                "tiktoken cl100k_base is unavailable (%s); chunking counts regex words instead "
                "(install llama-index-core for its offline copy, or pass the encoder's tokenizer)",
                exc,
            )
            _warned_regex = True
        return regex_spans


def token_spans_for(tokenizer: Any = None) -> Callable[[str], Spans]:
    """Turn ``tokenizer`` into a function ``text -> [(char_start, char_end), ...]`` per token.

    Accepts None (default), an HF fast tokenizer, a tiktoken ``Encoding``, a tiktoken encoding name such
    as ``"cl100k_base"``, ``"regex"`` (force the fallback) or such a function itself.
    """
    if tokenizer is None:
        return default_spans()
    if isinstance(tokenizer, str):
        return regex_spans if tokenizer == "regex" else _tiktoken_spans(tiktoken_encoding(tokenizer))
    if hasattr(tokenizer, "encode_ordinary") and hasattr(tokenizer, "decode_with_offsets"):
        return _tiktoken_spans(tokenizer)
    if hasattr(tokenizer, "backend_tokenizer") or hasattr(tokenizer, "is_fast"):
        return _hf_spans(tokenizer)
    if callable(tokenizer):
        return tokenizer
    raise InvalidInputError(
        f"unsupported tokenizer {type(tokenizer).__name__}: pass an HF fast tokenizer, a tiktoken "
        "Encoding, an encoding name, 'regex' or a function text -> token spans"
    )


def _boundary_rank(text: str, cut: int) -> int:
    """How good a place char ``cut`` is to end a chunk: 3 paragraph, 2 sentence/line, 1 word, 0 mid-word."""
    left, right = text[max(0, cut - 8) : cut], text[cut : cut + 8]
    core = left.rstrip()
    gap = left[len(core) :] + right[: len(right) - len(right.lstrip())]
    if not gap:
        return 0
    if gap.count("\n") >= 2:
        return 3
    if "\n" in gap or core.rstrip(_CLOSERS).endswith((".", "!", "?")):
        return 2
    return 1


def chunk_text(text: str, *, tokenizer: Any = None, chunk_tokens: int = 512, overlap: int = 64) -> list[Chunk]:
    """Split ``text`` into overlapping token windows with exact character offsets.

    Guarantees: chunks cover the whole text (the first starts at 0, the last ends at ``len(text)``, each
    starts after the previous one's start and at or before its end, and ends after its end);
    ``text[c.start:c.end] == c.text``; each chunk's text, tokenized alone, has at most ``chunk_tokens``
    tokens and the text two neighbours share at most ``overlap`` (only a single character that alone takes
    more than ``chunk_tokens`` tokens, possible below 4, can exceed it). Empty or whitespace-only text
    gives ``[]``.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"chunk_text needs a str, got {type(text).__name__}")
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise InvalidInputError(f"chunk_tokens must be an int >= 1, got {chunk_tokens!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < chunk_tokens:
        raise InvalidInputError(
            f"overlap must be an int with 0 <= overlap < chunk_tokens ({chunk_tokens}), got {overlap!r}")
    if not text.strip():
        return []
    spans_of = token_spans_for(tokenizer)
    starts = token_starts(text, spans_of)
    n = len(starts)
    if n <= chunk_tokens:
        return [Chunk(text, 0, len(text), 0)]
    slack = max(1, chunk_tokens // 5)
    chunks: list[Chunk] = []
    first, c_start, prev_last = 0, 0, 0
    while True:
        last = min(first + chunk_tokens, n)  # window = tokens [first, last)
        if last < n:
            best, best_rank = last, _boundary_rank(text, starts[last])
            for cut in range(last - 1, max(first + overlap + 1, last - slack) - 1, -1):
                rank = _boundary_rank(text, starts[cut])
                if rank > best_rank:
                    best, best_rank = cut, rank
                    if rank == 3:
                        break
            last = best
        last = _fit_window(text, spans_of, starts, first, last, c_start, chunk_tokens)
        c_end = len(text) if last >= n else starts[last]
        if chunks and c_end <= chunks[-1].end:  # the overlap left no room to move on (a many-token character)
            first, c_start = prev_last, chunks[-1].end
            continue
        chunks.append(Chunk(text[c_start:c_end], c_start, c_end, len(chunks)))
        if last >= n:
            return chunks
        prev_last = last
        first = _next_first(text, spans_of, starts, last, c_start, c_end, overlap)
        c_start = starts[first]


def window_cut(text: str, begin: int, size: int) -> int:
    """Where the piece of ``text`` from ``begin`` ends: just before the last whitespace run after a letter or digit
    within ``size`` characters (else after any non-space character, else at ``begin + size``)."""
    end = begin + size
    if end >= len(text):
        return len(text)
    for pattern in (_SAFE_CUT, _ANY_CUT):
        for lookback in (4096, size):  # almost always found near the end: scan only the tail first
            last = deque(pattern.finditer(text, max(begin, end - lookback), end), maxlen=1)
            if last:
                return last[0].end()
    return end


def token_starts(text: str, spans_of: Callable[[str], Spans]) -> array[int]:
    """The character where each token of ``text`` starts, made monotone (byte-level BPE can repeat an offset, and a
    cut must never move backwards); tokenized in pieces of at most ``WINDOW_CHARS`` characters (module docstring)."""
    starts: array[int] = array("q")
    low, begin = 0, 0
    while begin < len(text):
        end = window_cut(text, begin, WINDOW_CHARS)
        for start, _ in spans_of(text[begin:end]):
            low = max(low, min(start + begin, end))
            starts.append(low)
        begin = end
    return starts


def _fit_window(
    text: str, spans_of: Callable[[str], Spans], starts: array[int], first: int, last: int, c_start: int, limit: int
) -> int:
    """The window end ``last``, moved back until the chunk's text re-tokenizes to at most ``limit`` tokens.

    The encoder tokenizes each chunk on its own: a cut inside a word (WordPiece ``##`` pieces) or inside a
    multi-byte character (byte-level BPE) gives the piece more tokens than its window had, and the encoder
    would silently cut the excess. Never moves ``last`` to or before ``c_start`` (a chunk keeps >= 1 char).
    """
    n = len(starts)
    while last < n and starts[last] <= c_start:  # the window lies inside one character: take that character
        last += 1
    floor = last
    while floor - 1 > first and starts[floor - 1] > c_start:
        floor -= 1
    while True:
        c_end = len(text) if last >= n else starts[last]
        excess = len(spans_of(text[c_start:c_end])) - limit
        if excess <= 0 or last <= floor:
            return last
        last = max(floor, last - excess)


def _next_first(
    text: str, spans_of: Callable[[str], Spans], starts: array[int], last: int, c_start: int, c_end: int, overlap: int
) -> int:
    """Where the next window starts: ``overlap`` tokens back from ``last``, but strictly after ``c_start``
    (progress) and so that the repeated text re-tokenizes to at most ``overlap`` tokens."""
    first = last - overlap
    while starts[first] <= c_start:
        first += 1
    while first < last and len(spans_of(text[starts[first] : c_end])) > overlap:
        first += 1
    return first


def chunk_documents(
    docs: Iterable[Document], *, tokenizer: Any = None, chunk_tokens: int = 512, overlap: int = 64
) -> list[Document]:
    """Chunk each document; chunk ``i`` of ``doc`` is ``Document(f"{doc.id}#{i}", ...)`` with the source
    metadata plus ``source_id``, ``chunk_index``, ``char_start`` and ``char_end``. Each chunk is a
    :class:`SourcedDocument` with ``parent=doc.id`` (the store replaces all of a parent's chunks at once) and
    the document's ``origin``."""
    spans = token_spans_for(tokenizer)
    out: list[Document] = []
    empty: list[str] = []
    for doc in docs:
        origin = doc.origin if isinstance(doc, SourcedDocument) else ""
        if not isinstance(doc, Document):
            raise InvalidInputError(f"chunk_documents needs Document objects, got {type(doc).__name__}")
        if not isinstance(doc.text, str) or not doc.text.strip():
            empty.append(doc.id)
            continue
        for chunk in chunk_text(doc.text, tokenizer=spans, chunk_tokens=chunk_tokens, overlap=overlap):
            meta = {
                **doc.metadata,
                "source_id": doc.id,
                "chunk_index": chunk.index,
                "char_start": chunk.start,
                "char_end": chunk.end,
            }
            out.append(SourcedDocument(f"{doc.id}#{chunk.index}", chunk.text, meta, origin=origin, parent=doc.id))
    if empty:
        logger.warning("skipped %d empty document(s) while chunking: %s", len(empty), ", ".join(empty[:10]))
    return out

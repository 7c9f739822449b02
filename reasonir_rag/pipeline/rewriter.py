"""Query rewriting with an LLM before retrieval (ReasonIR: BRIGHT nDCG@10 24.4 -> 29.9).

``style="reasonir"`` asks ReasonIR's question: the question (newlines flattened, as ReasonIR does), then
"Instructions: 1. Identify the essential problem. 2. Think step by step ... 3. Draft an answer ...", with the
token budget stated. The answer is a long query, encoded with the QUERY prefix. ``style="hyde"`` writes a
hypothetical passage (HyDE) that is meant to be encoded with the DOCUMENT prefix. Every result says which
prefix it wants (:attr:`Rewrite.prefix_kind`).

The output is measured and cut with the TARGET ENCODER's tokenizer so that it fits the encoder after its
prefix (``encoder.text_budget(prefix)``); without an encoder it is cut to ``max_length`` LLM tokens. With
``keep_original`` the question comes first and only the generated part is ever cut.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, Literal

from reasonir_rag._common.sqlite_file import SQLiteFile
from reasonir_rag._common.steps import adrive, drive
from reasonir_rag._common.tokens import cut_to_tokens
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.llm.base import LLMCall, acall_llm, call_llm
from reasonir_rag.llm.prompts import (
    REWRITE_HYDE,
    REWRITE_REASONIR,
    REWRITE_SYSTEM,
    REWRITE_TOKEN_LIMIT,
    neutralise_control_tokens,
)
from reasonir_rag.protocols import LLM, TokenizingEncoder
from reasonir_rag.types import PrefixKind, Rewrite

logger = logging.getLogger(__name__)

_LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
STYLES: dict[str, PrefixKind] = {"reasonir": "query", "hyde": "document"}


class RewriteCache:
    """A persistent SQLite store of LLM rewrites keyed by model, prompt, query and settings."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = SQLiteFile(self.path, "CREATE TABLE IF NOT EXISTS rewrites (key TEXT PRIMARY KEY, "
                              "text TEXT NOT NULL, created REAL)", what="rewrite cache")

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        return dict(self._db.read_keys("SELECT key, text FROM rewrites WHERE key IN ({marks})", list(keys)))

    def put_many(self, items: dict[str, str]) -> None:
        """All of ``items`` in one transaction, or none (a StorageError naming the file)."""
        self._db.write("INSERT OR REPLACE INTO rewrites VALUES (?, ?, ?)",
                       [(k, v, time.time()) for k, v in items.items()])

    def __len__(self) -> int:
        return self._db.count("rewrites")


class QueryRewriter:
    """Rewrite questions into long, information-rich queries (or HyDE passages) that fit the encoder."""

    def __init__(
        self,
        llm: LLM,
        *,
        style: Literal["reasonir", "hyde"] = "reasonir",
        max_tokens: int = 2048,
        keep_original: bool = True,
        encoder: TokenizingEncoder | None = None,
        instruction: str | None = None,
        task: str | None = None,
        max_length: int = 2048,
        state_budget: bool = True,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
        system_message: str | None = REWRITE_SYSTEM,
        cache: RewriteCache | str | Path | None = None,
        on_error: Literal["fallback", "raise"] = "fallback",
        clean_texts: bool = True,
    ):
        if style not in STYLES:
            raise InvalidInputError(f"style must be one of {sorted(STYLES)}, got {style!r}")
        if max_tokens < 1 or max_length < 1:
            raise InvalidInputError("max_tokens and max_length must be >= 1")
        if on_error not in ("fallback", "raise"):
            raise InvalidInputError(f"on_error must be 'fallback' or 'raise', got {on_error!r}")
        self.llm, self.style, self.prefix_kind = llm, style, STYLES[style]
        self.max_tokens, self.keep_original, self.state_budget = max_tokens, keep_original, state_budget
        self.encoder, self.instruction, self.task, self.max_length = encoder, instruction, task, max_length
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.system_message, self.on_error, self.clean_texts = system_message, on_error, clean_texts
        self.cache = RewriteCache(cache) if isinstance(cache, (str, Path)) else cache

    def __repr__(self) -> str:
        return f"QueryRewriter({self.llm!r}, style={self.style!r}, max_tokens={self.max_tokens})"

    # ------------------------------------------------------------------ public
    def rewrite(self, query: str) -> str:
        """The text to encode for ``query`` (see :meth:`rewrite_query` for which prefix it wants)."""
        return self.rewrite_query(query).text

    def rewrite_many(self, queries: Sequence[str]) -> list[str]:
        return [r.text for r in self.rewrite_queries(queries)]

    def rewrite_query(self, query: str) -> Rewrite:
        return self.rewrite_queries([query])[0]

    def rewrite_queries(self, queries: Sequence[str]) -> list[Rewrite]:
        """Rewrites in input order; one batched LLM call for what the cache does not hold."""
        return drive(self._rewriting(queries), lambda call: call_llm(self.llm, call))

    async def arewrite(self, query: str) -> str:
        """:meth:`rewrite`, awaiting the LLM (see :meth:`arewrite_queries`)."""
        return (await self.arewrite_queries([query]))[0].text

    async def arewrite_queries(self, queries: Sequence[str]) -> list[Rewrite]:
        """:meth:`rewrite_queries` with the LLM call awaited: an async backend (``OpenAICompatibleLLM``'s
        ``AsyncOpenAI``, a framework model's async API) holds no thread; one without runs in a worker thread."""
        return await adrive(self._rewriting(queries), lambda call: acall_llm(self.llm, call))

    def prompt(self, query: str) -> list[dict[str, str]]:
        """The chat messages sent for ``query``: its line breaks flattened to spaces (ReasonIR does it for
        newlines; every line break, so that no line of the query can pose as "Instructions:" or "Passage:") and
        chat control tokens such as ``<|im_end|>`` made plain text, so the query cannot open a chat turn."""
        # clean_texts=False: ReasonIR's own, query.replace("\n", " ") and nothing else (the paper protocol)
        flat = neutralise_control_tokens(_LINE_BREAKS.sub(" ", query)) if self.clean_texts else query.replace("\n", " ")
        if self.style == "reasonir":
            user = REWRITE_REASONIR.format(query=flat)
            if self.state_budget:
                user += REWRITE_TOKEN_LIMIT.format(limit=self.max_tokens)
        else:
            user = REWRITE_HYDE.format(query=flat)
        messages = [{"role": "user", "content": user}]
        if self.system_message:
            messages.insert(0, {"role": "system", "content": self.system_message})
        return messages

    @property
    def budget(self) -> int:
        """Tokens the encoded text may take: the encoder's room after its prefix, else ``max_length``."""
        if self.encoder is None:
            return self.max_length
        if self.prefix_kind == "document":
            return self.encoder.text_budget(self.encoder.document_prefix)
        return self.encoder.text_budget(self.encoder.query_prefix(instruction=self.instruction, task=self.task))

    # ------------------------------------------------------------------ internals
    def _rewriting(self, queries: Sequence[str]) -> Generator[LLMCall, Any, list[Rewrite]]:
        """The rewrite, written once for both callers: yields its one LLM call (steps.py), returns the rewrites."""
        items = _validated(queries)
        unique = list(dict.fromkeys(items))
        prompts = {q: self.prompt(q) for q in unique}
        keys = {q: self._key(q, prompts[q]) for q in unique}
        hits = self.cache.get_many(list(keys.values())) if self.cache is not None else {}
        todo = [q for q in unique if keys[q] not in hits]
        generated: dict[str, Any] = {q: hits[keys[q]] for q in unique if keys[q] in hits}
        if todo:
            outs = yield LLMCall("generate", ([prompts[q] for q in todo],), dict(
                max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                return_exceptions=True))
            fresh = {}
            for q, out in zip(todo, outs, strict=True):
                if isinstance(out, str) and out.strip():
                    fresh[keys[q]] = out.strip()
                    generated[q] = out.strip()
                else:
                    generated[q] = out if isinstance(out, BaseException) else LLMError("the LLM returned no text")
            if self.cache is not None:
                self.cache.put_many(fresh)
        results = {q: self._finish(q, generated[q], cached=keys[q] in hits) for q in unique}
        return [results[q] for q in items]

    def _key(self, query: str, prompt: list[dict[str, str]]) -> str:
        settings = {"style": self.style, "max_tokens": self.max_tokens, "temperature": self.temperature,
                    "top_p": self.top_p, "seed": self.seed}
        prompt_hash = hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()
        blob = json.dumps({"model": self.llm.model_name, "prompt": prompt_hash, "query": query,
                           "settings": settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _finish(self, query: str, generated: Any, *, cached: bool) -> Rewrite:
        if isinstance(generated, BaseException):
            if self.on_error == "raise":
                raise LLMError(f"rewriting {query[:60]!r} failed: {generated}") from generated
            logger.warning("rewriting %r failed (%s); using the original question", query[:60], generated)
            text, cut = self._fit("", query)
            # the fallback is the question itself, which is a query whatever the style
            return Rewrite(text, "query", query, "", cut, cached, f"{type(generated).__name__}: {generated}")
        head = query + "\n\n" if self.keep_original else ""
        text, cut = self._fit(head, generated)
        return Rewrite(text, self.prefix_kind, query, generated, cut, cached)

    def _fit(self, head: str, body: str) -> tuple[str, bool]:
        """``head + body`` cut (body first, on token boundaries) to the budget of the target tokenizer."""
        budget = self.budget
        if self._count(head + body) <= budget:
            return head + body, False
        room = budget - self._count(head)
        if room <= 0:
            logger.warning("the question alone exceeds the encoder budget of %d tokens; it is cut", budget)
            return self._truncate(head.rstrip("\n"), budget), True
        body = self._truncate(body, room)
        while body and self._count(head + body) > budget:  # token merges across the seam
            body = self._truncate(body, self._count(body) - 1)
        return (head + body if body else head.rstrip("\n")), True

    def _count(self, text: str) -> int:
        if self.encoder is not None:
            return self.encoder.count_tokens(text)
        return self.llm.count_tokens(text)

    def _truncate(self, text: str, max_tokens: int) -> str:
        if self.encoder is None:
            return self.llm.truncate(text, max_tokens)
        return cut_to_tokens(self.encoder.tokenizer, text, max_tokens)


def _validated(queries: Any) -> list[str]:
    if queries is None or isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
        raise InvalidInputError(f"queries must be a list of strings, got {type(queries).__name__}")
    problems = []
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            problems.append(f"#{i} is {type(q).__name__}, not str")
        elif not q.strip():
            problems.append(f"#{i} is empty or whitespace only")
    if problems:
        raise InvalidInputError(f"{len(problems)} of {len(queries)} queries cannot be rewritten: "
                                + "; ".join(problems[:5]))
    return list(queries)

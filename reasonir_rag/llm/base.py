"""Helpers shared by the LLM backends (the protocol they implement is :class:`reasonir_rag.protocols.LLM`).

A prompt is either a fully rendered string (sent as is: completions style) or a list of chat messages
(``{"role": ..., "content": ...}``). A message list whose last message is an ``assistant`` message is
*continued*: the backend renders it without closing that message, so the model writes right after it
(how the reranker puts its answer prefix right before the score digit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reasonir_rag._common.steps import acall
from reasonir_rag._common.tokens import cut_by_estimate, cut_to_tokens, estimate_tokens, token_ids
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.types import Message

_ROLES = ("system", "user", "assistant", "tool")


def validate_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """A list of ``{"role", "content"}`` dicts, or a ValueError saying what is wrong with ``messages``."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidInputError(f"{where}: expected a non-empty list of chat messages, got {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InvalidInputError(f"{where}: message #{i} must be a mapping with 'role' and 'content'")
        if m["role"] not in _ROLES or not isinstance(m["content"], str):
            raise InvalidInputError(f"{where}: message #{i} has role {m['role']!r} / content of type "
                             f"{type(m['content']).__name__}; roles are {_ROLES} and content is a string")
        out.append({"role": str(m["role"]), "content": m["content"]})
    return out


def is_continuation(messages: Sequence[Message]) -> bool:
    """True when the last message is an assistant prefix to be continued."""
    return bool(messages) and messages[-1]["role"] == "assistant"


def validate_prompts(prompts: Any, where: str) -> list[str | list[dict[str, str]]]:
    """Check a batch of prompts up front, naming every bad one."""
    if prompts is None or isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise InvalidInputError(f"{where}: prompts must be a list (of strings or of message lists), "
                         f"got {type(prompts).__name__}")
    out: list[str | list[dict[str, str]]] = []
    problems = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            out.append(p)
            continue
        try:
            out.append(validate_messages(p, f"prompt #{i}"))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidInputError(f"{where}: {len(problems)} bad prompt(s): " + "; ".join(problems[:5]))
    return out


def logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def fold_logprobs(pairs: Sequence[tuple[str, float]], candidates: Sequence[str]) -> dict[str, float]:
    """Top (token, log-prob) pairs folded onto ``candidates``, surrounding spaces ignored (" 4" and "4" add up); a
    candidate with no pair is missing from the result."""
    wanted = {c.strip() or c: c for c in candidates}
    found: dict[str, list[float]] = {}
    for token, logprob in pairs:
        key = token.strip() or token
        if key in wanted:
            found.setdefault(wanted[key], []).append(float(logprob))
    return {c: logsumexp(v) for c, v in found.items()}


class OptionalTokenizer:
    """Token counts and cuts for a backend whose local tokenizer is optional (``self.tokenizer`` may be None): exact
    with one, else by the 3-byte estimate."""

    tokenizer: Any

    def tokenize(self, text: str) -> list[int] | None:
        return None if self.tokenizer is None else token_ids(self.tokenizer, text)

    def count_tokens(self, text: str) -> int:
        ids = self.tokenize(text)
        return estimate_tokens(text) if ids is None else len(ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` within ``max_tokens`` (exact with a tokenizer, else by the 3-byte estimate)."""
        if self.tokenizer is None:
            return cut_by_estimate(text, max_tokens)
        return cut_to_tokens(self.tokenizer, text, max_tokens)


@dataclass(frozen=True)
class LLMCall:
    """One batched call a pipeline stage needs (it yields this from its steps, see ``_common/steps.py``):
    ``method`` of the :class:`~reasonir_rag.protocols.LLM` protocol with its arguments."""

    method: Literal["generate", "next_token_logprobs"]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def call_llm(llm: Any, call: LLMCall) -> Any:
    return getattr(llm, call.method)(*call.args, **call.kwargs)


async def acall_llm(llm: Any, call: LLMCall) -> Any:
    """``call`` through the LLM's own async method (``agenerate``, ``anext_token_logprobs``), else its sync one in a
    worker thread (:func:`~reasonir_rag._common.steps.acall`)."""
    return await acall(llm, call.method, *call.args, **call.kwargs)

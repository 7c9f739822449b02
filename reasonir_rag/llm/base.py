"""The small protocol every LLM backend implements, and helpers shared by the backends.

A prompt is either a fully rendered string (sent as is: completions style) or a list of chat messages
(``{"role": ..., "content": ...}``). A message list whose last message is an ``assistant`` message is
*continued*: the backend renders it without closing that message, so the model writes right after it
(how the reranker puts its answer prefix right before the score digit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Union, runtime_checkable

Message = Mapping[str, str]
Prompt = Union[str, Sequence[Message]]  # noqa: UP007 - a runtime alias, kept readable on 3.10

_ROLES = ("system", "user", "assistant", "tool")


class LLMError(RuntimeError):
    """A backend could not produce an answer (after its retries, where it retries).

    ``transient`` is True when the cause is one a later try may fix (server down or restarting, 5xx, 429,
    timeout) and the backend's own retries are spent: a batch job should stop and resume later rather than
    send its remaining requests to a server that is not there.
    """

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@runtime_checkable
class LLM(Protocol):
    """What the rewriter and the reranker need from a language model."""

    model_name: str

    def generate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
    ) -> list[Any]:
        """One completion per prompt, in order (an Exception in its place with ``return_exceptions``)."""
        ...

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Log-probs of single-token ``candidates`` at the position right after each prompt.

        String prompts are read as ``shared_prefix + prompt``; backends that can, compute the shared prefix
        once. A candidate missing from the result had no log-prob available (outside a server's top-k).
        """
        ...

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> str:
        """The chat template applied to ``messages`` (raises NotImplementedError without a local template)."""
        ...

    def tokenize(self, text: str) -> list[int] | None:
        """Token ids of ``text`` without special tokens, or None when the backend has no local tokenizer."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (an estimate when the backend has no local tokenizer)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` that fits in ``max_tokens`` tokens."""
        ...


def validate_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """A list of ``{"role", "content"}`` dicts, or a ValueError saying what is wrong with ``messages``."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"{where}: expected a non-empty list of chat messages, got {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"{where}: message #{i} must be a mapping with 'role' and 'content'")
        if m["role"] not in _ROLES or not isinstance(m["content"], str):
            raise ValueError(f"{where}: message #{i} has role {m['role']!r} / content of type "
                             f"{type(m['content']).__name__}; roles are {_ROLES} and content is a string")
        out.append({"role": str(m["role"]), "content": m["content"]})
    return out


def is_continuation(messages: Sequence[Message]) -> bool:
    """True when the last message is an assistant prefix to be continued."""
    return bool(messages) and messages[-1]["role"] == "assistant"


def validate_prompts(prompts: Any, where: str) -> list[str | list[dict[str, str]]]:
    """Check a batch of prompts up front, naming every bad one."""
    if prompts is None or isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise ValueError(f"{where}: prompts must be a list (of strings or of message lists), "
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
        raise ValueError(f"{where}: {len(problems)} bad prompt(s): " + "; ".join(problems[:5]))
    return out


def logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: one token per 3 UTF-8 bytes, rounded up."""
    return max(1, -(-len(text.encode("utf-8")) // 3)) if text else 0

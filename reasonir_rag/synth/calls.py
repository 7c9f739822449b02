"""LLM calls with bounded retries, each reply committed to the journal as its batch returns.

One call per seed; a reply without usable JSON, or whose every query ``accept`` refuses (it copies or points at
its passage: no use for that seed whatever else is kept), is retried, up to ``attempts`` calls in all. A retry
sends the request's ``retry`` messages: the JSON-only form of the prompt with the reply already started
(``{"hard_query": ["``), so a model that wandered off, ran out of tokens reasoning or copied a placeholder writes
the query itself; it samples at ``retry_temperature`` with another seed. A backend continues that started reply
(``TransformersLLM``; vLLM, SGLang and llama.cpp servers); a server that writes a fresh reply instead is parsed
on its own, and one that refuses the started reply is served with ``retry_reply_start=False``. Every attempt has
its own journal key (model, prompt hash, input hash, attempt, sampling settings), so a killed run resumes where
it stopped and never sends a recorded call again. A deterministic failure (the server refused the request) is
recorded as a failed attempt; a transient one (server down, retries spent) stops the stage with an
:class:`LLMError` that says how much is saved: the rerun resumes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag.errors import LLMError
from reasonir_rag.eval.journal import Journal, fill, journal_key
from reasonir_rag.llm.base import is_continuation
from reasonir_rag.protocols import LLM
from reasonir_rag.types import Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallSettings:
    max_tokens: int = 1536
    temperature: float = 0.0
    retry_temperature: float = 0.7
    attempts: int = 3
    concurrency: int = 4
    seed: int = 0
    retry_reply_start: bool = True  # retries start the model's reply (False: for an API that refuses that)

    def sampling(self, attempt: int) -> dict[str, Any]:
        temperature = self.temperature if attempt == 0 else max(self.temperature, self.retry_temperature)
        return {"max_tokens": self.max_tokens, "temperature": temperature, "seed": self.seed + attempt}


@dataclass(frozen=True)
class Request:
    """One input: ``text`` is what its journal key hashes; ``messages`` go to the first attempt, ``retry`` (if
    given) to the later ones (without its started reply when ``retry_reply_start`` is off)."""

    text: str
    messages: list[Message]
    retry: list[Message] | None = None

    def for_attempt(self, attempt: int, settings: CallSettings) -> list[Message]:
        if attempt == 0 or self.retry is None:
            return self.messages
        if not settings.retry_reply_start and is_continuation(self.retry):
            return self.retry[:-1]
        return self.retry


@dataclass
class Outcome:
    """What the calls for one input gave: each attempt's parsed value (none parsed: empty), every reply."""

    values: list[Any] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def value(self) -> Any:
        """The last parsed value (None: no attempt parsed)."""
        return self.values[-1] if self.values else None

    @property
    def attempts(self) -> int:
        return len(self.replies) + len(self.errors)


@dataclass
class CallCounts:
    made: int = 0
    from_journal: int = 0
    failed: int = 0


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_reply(parse: Callable[[str], Any], messages: list[Message], reply: str) -> Any:
    """``parse`` of the reply as continued from the messages' started reply; of the reply alone when that gives
    nothing (a server that wrote a fresh reply)."""
    if is_continuation(messages):
        value = parse(messages[-1]["content"] + reply)
        if value is not None:
            return value
    return parse(reply)


def run_calls(
    journal: Journal, llm: LLM, kind: str, prompts: tuple[str, str], requests: Sequence[Request],
    parse: Callable[[str], Any], settings: CallSettings, counts: CallCounts,
    progress: Callable[[int], AbstractContextManager[Any]], accept: Callable[[int, Any], bool] | None = None,
) -> list[Outcome]:
    """For each request: call until ``parse`` gives a value that ``accept(index, value)`` takes (default: any)
    or the attempts are spent. ``prompts``: the SHA-256 of the first attempt's prompt and of the retries'."""
    outcomes = [Outcome() for _ in requests]
    pending = list(range(len(requests)))
    with progress(len(requests)) as bar:
        for attempt in range(settings.attempts):
            if not pending:
                break
            sampling = settings.sampling(attempt)
            prompt = prompts[0] if attempt == 0 else prompts[1]
            started = {} if attempt == 0 else {"reply_start": settings.retry_reply_start}
            keys = [journal_key(kind, model=llm.model_name, prompt=prompt, input=sha256(requests[i].text),
                                attempt=attempt, **started, **sampling) for i in pending]
            done = fill(journal, keys, [requests[i].for_attempt(attempt, settings) for i in pending],
                        functools.partial(_generate, llm, sampling, counts), batch=settings.concurrency, kind=kind)
            counts.made += done.new
            counts.from_journal += done.journaled
            if done.unavailable:
                raise LLMError(f"the LLM is unavailable ({done.failures[0]}); {counts.made + counts.from_journal} "
                               f"replies are saved in {journal.path}: rerun the same command to resume",
                               transient=True)
            found = done.values
            still = []
            for i, key in zip(pending, keys, strict=True):
                entry, outcome, value = found[key], outcomes[i], None
                if "error" in entry:
                    outcome.errors.append(entry["error"])
                else:
                    outcome.replies.append(entry["reply"])
                    value = parse_reply(parse, requests[i].for_attempt(attempt, settings), entry["reply"])
                    if value is not None:
                        outcome.values.append(value)
                taken = value is not None and (accept is None or accept(i, value))
                if not taken and attempt + 1 < settings.attempts:
                    still.append(i)
                else:
                    bar.update(1)
            pending = still
    return outcomes


def _generate(llm: LLM, sampling: dict[str, Any], counts: CallCounts, batch: list[list[Message]]) -> list[Any]:
    """One batch of calls, as the journal records them: each reply's text, or a deterministic failure (the
    server refused the request: the same call would fail again); a transient failure stays an exception (not
    recorded: the rerun sends it)."""
    out: list[Any] = []
    for reply in llm.generate(batch, return_exceptions=True, **sampling):
        if isinstance(reply, BaseException) and getattr(reply, "transient", False):
            out.append(reply)
        elif isinstance(reply, BaseException):
            counts.failed += 1
            out.append({"error": f"{type(reply).__name__}: {reply}"})
        else:
            out.append({"reply": str(reply)})
    return out

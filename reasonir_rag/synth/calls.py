"""LLM calls with bounded retries, each reply committed to the journal as its batch returns.

One call per seed; a reply without usable JSON is retried (up to ``attempts`` calls in all; the retries sample
at ``retry_temperature`` with another seed, since a greedy retry would repeat the same reply). Every attempt has
its own journal key (model, prompt hash, input hash, attempt, sampling settings), so a killed run resumes where
it stopped and never sends a recorded call again. A deterministic failure (the server refused the request) is
recorded as a failed attempt; a transient one (server down, retries spent) stops the stage with an
:class:`LLMError` that says how much is saved: the rerun resumes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag.errors import LLMError
from reasonir_rag.eval.journal import Journal, journal_key
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

    def sampling(self, attempt: int) -> dict[str, Any]:
        temperature = self.temperature if attempt == 0 else max(self.temperature, self.retry_temperature)
        return {"max_tokens": self.max_tokens, "temperature": temperature, "seed": self.seed + attempt}


@dataclass
class Outcome:
    """What the calls for one input gave: the parsed value (None: none parsed) and every attempt's reply."""

    value: Any = None
    replies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

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


def run_calls(
    journal: Journal, llm: LLM, kind: str, prompt_sha256: str, inputs: Sequence[tuple[str, list[Message]]],
    parse: Callable[[str], Any], settings: CallSettings, counts: CallCounts,
    progress: Callable[[int], AbstractContextManager[Any]],
) -> list[Outcome]:
    """For each ``(input text, messages)``: call until ``parse`` accepts a reply or the attempts are spent."""
    outcomes = [Outcome() for _ in inputs]
    pending = list(range(len(inputs)))
    with progress(len(inputs)) as bar:
        for attempt in range(settings.attempts):
            if not pending:
                break
            sampling = settings.sampling(attempt)
            keys = [journal_key(kind, model=llm.model_name, prompt=prompt_sha256, input=sha256(inputs[i][0]),
                                attempt=attempt, **sampling) for i in pending]
            found = journal.get_many(keys)
            counts.from_journal += len(found)
            todo = [(i, key) for i, key in zip(pending, keys, strict=True) if key not in found]
            for start in range(0, len(todo), settings.concurrency):
                batch = todo[start : start + settings.concurrency]
                replies = llm.generate([inputs[i][1] for i, _ in batch], return_exceptions=True, **sampling)
                _record(journal, kind, batch, replies, found, counts)
            still = []
            for i, key in zip(pending, keys, strict=True):
                entry = found[key]
                if "error" in entry:
                    outcomes[i].errors.append(entry["error"])
                else:
                    outcomes[i].replies.append(entry["reply"])
                    outcomes[i].value = parse(entry["reply"])
                if outcomes[i].value is None and attempt + 1 < settings.attempts:
                    still.append(i)
                else:
                    bar.update(1)
            pending = still
    return outcomes


def _record(journal: Journal, kind: str, batch: list[tuple[int, str]], replies: list[Any],
            found: dict[str, Any], counts: CallCounts) -> None:
    transient: list[str] = []
    for (_, key), reply in zip(batch, replies, strict=True):
        if isinstance(reply, BaseException):
            if getattr(reply, "transient", False):
                transient.append(f"{type(reply).__name__}: {reply}")
                continue
            entry: dict[str, Any] = {"error": f"{type(reply).__name__}: {reply}"}
            counts.failed += 1
        else:
            entry = {"reply": str(reply)}
        journal.put(key, entry, kind=kind)
        found[key] = entry
        counts.made += 1
    if transient:
        raise LLMError(f"the LLM is unavailable ({transient[0]}); {counts.made + counts.from_journal} replies are "
                       f"saved in {journal.path}: rerun the same command to resume", transient=True)

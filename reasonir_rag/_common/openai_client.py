"""The openai client for one server, with the project's retries and thread pool: one implementation for the LLM
backend and the served encoder.

429, 5xx, timeouts and connection errors are retried with exponential backoff (honouring ``Retry-After``), then an
:class:`~reasonir_rag.errors.LLMError` names the URL and the attempts (``transient=True``); other HTTP errors fail
at once. The API key goes to the openai client only: it is never logged, never in a repr, never in a message.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, LLMError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's; without a trailing slash."""
    return (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object as given, or loaded from a folder (or a hub id available offline)."""
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    transformers = require("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(tokenizer))


class OpenAIClient:
    """``client`` (an ``openai.OpenAI`` with its own retries off), :meth:`call` (one request, retried) and
    :meth:`map` (many, on at most ``max_concurrency`` threads). ``label`` names the model in messages."""

    def __init__(self, base_url: str, api_key: str | None = None, *, label: str, max_concurrency: int = 8,
                 max_retries: int = 4, timeout: float = 120.0, backoff: float = 0.5, max_backoff: float = 20.0):
        openai = require("openai")
        if max_concurrency < 1 or max_retries < 0:
            raise InvalidInputError("max_concurrency must be >= 1 and max_retries >= 0")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            logger.debug("no API key given or in OPENAI_API_KEY; sending a placeholder (fine for local servers)")
        self.base_url, self.label = base_url, label
        self.client = openai.OpenAI(base_url=base_url, api_key=key or "EMPTY", max_retries=0, timeout=timeout)
        self._openai = openai
        self.max_concurrency, self.max_retries = max_concurrency, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff

    def __repr__(self) -> str:
        return f"OpenAIClient({self.base_url!r}, {self.label})"

    def map(self, fn: Callable[[Any], Any], items: list[Any], *, return_exceptions: bool = False) -> list[Any]:
        """``fn`` over ``items`` on at most ``max_concurrency`` threads; results in input order."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            futures = [pool.submit(fn, item) for item in items]
            results: list[Any] = []
            for f in futures:
                exc = f.exception()
                results.append(exc if exc is not None else f.result())
        errors = [r for r in results if isinstance(r, Exception)]
        if errors and not return_exceptions:
            raise errors[0]
        return results

    def call(self, what: str, request: Callable[[], Any]) -> Any:
        """Run ``request``, retrying what a retry can fix; raise :class:`LLMError` naming URL and attempts."""
        openai = self._openai
        attempts = self.max_retries + 1
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                return request()
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and (exc.status_code < 500 or exc.status_code == 501):  # 501: never
                    raise LLMError(f"{what} request to {self.base_url} ({self.label}) was rejected "
                                   f"with HTTP {exc.status_code}: {self._redact(exc)}") from exc
                last, retry_after = exc, _retry_after(exc)
            except openai.APIConnectionError as exc:  # includes APITimeoutError
                last = exc
            if attempt == attempts:
                break
            delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (1 + 0.1 * random.random())
            if retry_after is not None:
                delay = min(self.max_backoff, max(delay, retry_after))
            logger.warning("%s request to %s failed (%s, attempt %d of %d); retrying in %.1fs", what, self.base_url,
                           type(last).__name__, attempt, attempts, delay)
            time.sleep(delay)
        raise LLMError(f"{what} request to {self.base_url} ({self.label}) failed after {attempts} "
                       f"attempts: {type(last).__name__}: {self._redact(last)}", transient=True) from last

    def _redact(self, exc: BaseException | None) -> str:
        text = str(exc)
        key = self.client.api_key
        return text.replace(key, "***") if key and key != "EMPTY" else text


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None



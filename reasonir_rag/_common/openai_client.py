"""The openai client for one server, on the openai package's own machinery: one implementation for the LLM backend
and the served encoder.

Retries are openai's own (408, 409, 429, 5xx, timeouts and connection errors; ``x-should-retry``;
``retry-after-ms``, ``Retry-After`` in seconds or as an HTTP date, up to two minutes), with the project's
``backoff``/``max_backoff`` for the exponential part. The connect timeout is short and separate from the read
timeout, and a connection that is refused or never accepted is retried only ``connect_retries`` times (1), so an
unreachable server fails in seconds (about 1 s refused, 2 x 5 s unanswered) while a long generation may take
minutes and an overloaded server still gets every retry. Afterwards an
:class:`~reasonir_rag.errors.LLMError` names the URL and the attempts (``transient=True`` for what a later try may
fix). The API key (and a password in the URL) is registered with :mod:`reasonir_rag._common.secrets`: it is never
logged, never in a repr, never in a message or a chained cause, even when a server echoes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reasonir_rag._common import secrets
from reasonir_rag._common.steps import LoopGate
from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, LLMError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
CONNECT_TIMEOUT = 5.0
CONNECT_RETRIES = 1
# what openai retries (its _should_retry): these statuses are "unavailable", not a verdict on the request
_RETRIED_STATUSES = frozenset({408, 409, 429})


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's; without a trailing slash."""
    return (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object as given, or loaded from a folder (or a hub id available offline)."""
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    transformers = require("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(tokenizer))


def _client_type(base: type, backoff: float, max_backoff: float, initial: float, connect_retries: int) -> Any:
    """``base`` (openai.OpenAI or AsyncOpenAI) whose exponential wait starts at ``backoff`` and stops at
    ``max_backoff`` (a server's own ``Retry-After`` wait is kept as openai computes it), and that stops retrying a
    failed connect after ``connect_retries`` (openai would spend every retry, each a connect timeout long)."""
    httpx = require("httpx")
    openai = require("openai")

    def check_connect(retries_taken: int) -> None:
        failure = sys.exc_info()[1]  # openai asks for the wait inside its except block: this is the error
        if isinstance(failure, (httpx.ConnectError, httpx.ConnectTimeout)) and retries_taken >= connect_retries:
            error = openai.APITimeoutError if isinstance(failure, httpx.TimeoutException) else openai.APIConnectionError
            raise error(request=failure.request) from failure

    class Client(base):
        def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None) -> float:
            delay: float = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
            asked = self._parse_retry_after_header(response_headers)
            if asked is not None and 0 < asked <= 120:  # openai then waits what the server asked
                return delay
            return min(max_backoff, delay * backoff / initial)

        if inspect.iscoroutinefunction(getattr(base, "_sleep_for_retry", None)):
            async def _sleep_for_retry(self, *, retries_taken: int, **kwargs: Any) -> None:
                check_connect(retries_taken)
                await super()._sleep_for_retry(retries_taken=retries_taken, **kwargs)
        else:
            def _sleep_for_retry(self, *, retries_taken: int, **kwargs: Any) -> None:  # type: ignore[misc]
                check_connect(retries_taken)
                super()._sleep_for_retry(retries_taken=retries_taken, **kwargs)

    return Client


class OpenAIClient:
    """``client`` (an ``openai.OpenAI``), ``async_client`` (an ``openai.AsyncOpenAI``, made on first use),
    :meth:`call` / :meth:`acall` (one request, errors as :class:`LLMError`) and :meth:`map` / :meth:`amap` (many,
    at most ``max_concurrency`` at a time). ``label`` names the model in messages."""

    def __init__(self, base_url: str, api_key: str | None = None, *, label: str, max_concurrency: int = 8,
                 max_retries: int = 4, timeout: float = 120.0, connect_timeout: float = CONNECT_TIMEOUT,
                 backoff: float = 0.5, max_backoff: float = 20.0, connect_retries: int = CONNECT_RETRIES):
        openai = require("openai")
        if max_concurrency < 1 or max_retries < 0 or connect_retries < 0:
            raise InvalidInputError("max_concurrency must be >= 1, max_retries and connect_retries >= 0")
        if not (timeout > 0 and connect_timeout > 0 and backoff >= 0 and max_backoff >= 0):
            raise InvalidInputError(f"timeout ({timeout}) and connect_timeout ({connect_timeout}) must be > 0, "
                                    f"backoff ({backoff}) and max_backoff ({max_backoff}) >= 0")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            logger.debug("no API key given or in OPENAI_API_KEY; sending a placeholder (fine for local servers)")
        secrets.register(key)
        secrets.guard_http_logs()
        self.base_url, self.label = base_url, label
        self.shown_url = secrets.register_url(base_url) or base_url
        self.max_concurrency, self.max_retries = max_concurrency, max_retries
        self.timeout = openai.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._openai = openai
        initial = float(getattr(getattr(openai, "_constants", None), "INITIAL_RETRY_DELAY", 0.5))
        self._options: dict[str, Any] = dict(base_url=base_url, api_key=key or "EMPTY", max_retries=max_retries,
                                             timeout=self.timeout)
        retry = (backoff, max_backoff, initial, min(connect_retries, max_retries))
        self._async_type = _client_type(openai.AsyncOpenAI, *retry)
        self.client = _client_type(openai.OpenAI, *retry)(**self._options)
        self._gate = LoopGate(max_concurrency)
        self._async_clients: dict[int, Any] = {}  # one AsyncOpenAI per event loop (its connections belong to it)

    def __repr__(self) -> str:
        return f"OpenAIClient({self.shown_url!r}, {self.label})"

    @property
    def async_client(self) -> Any:
        """The ``openai.AsyncOpenAI`` for the running event loop."""
        loop = id(asyncio.get_running_loop())
        if loop not in self._async_clients:
            self._async_clients[loop] = self._async_type(**self._options)
        return self._async_clients[loop]

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
        return _gathered(results, return_exceptions)

    async def amap(self, fn: Callable[[Any], Awaitable[Any]], items: list[Any], *,
                   return_exceptions: bool = False) -> list[Any]:
        """``await fn(item)`` for each item; at most ``max_concurrency`` requests in flight on this event loop,
        across concurrent calls; results in input order."""
        return _gathered(await self._gate.gather(fn, items), return_exceptions)

    def call(self, what: str, request: Callable[[], Any]) -> Any:
        """Run ``request`` (openai retries inside it); raise :class:`LLMError` naming URL and attempts."""
        try:
            return request()
        except self._openai.APIError as exc:
            raise self._error(what, exc) from secrets.scrub(exc)

    async def acall(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        """:meth:`call` for a coroutine made with :attr:`async_client`."""
        try:
            return await request()
        except self._openai.APIError as exc:
            raise self._error(what, exc) from secrets.scrub(exc)

    def _error(self, what: str, exc: Any) -> LLMError:
        openai = self._openai
        attempts = _attempts(exc)
        where = f"{what} request to {self.shown_url} ({self.label})"
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        name = type(exc).__name__
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status in _RETRIED_STATUSES or status >= 500:
                return LLMError(secrets.redact(f"{where} failed after {tries}: {name} (HTTP {status}): {exc}"),
                                transient=True)
            return LLMError(secrets.redact(f"{where} was rejected with HTTP {status} ({tries}): {name}: {exc}"))
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ is not None else ""
            return LLMError(secrets.redact(f"{where} failed after {tries}: {name}{cause}: {exc}"), transient=True)
        return LLMError(secrets.redact(f"{where} failed: {type(exc).__name__}: {exc}"))


def _attempts(exc: Any) -> int:
    """How many times openai sent the request: its ``x-stainless-retry-count`` header on the last one, plus one."""
    try:
        return int(exc.request.headers.get("x-stainless-retry-count", "0")) + 1
    except (AttributeError, TypeError, ValueError):
        return 1


def _gathered(results: list[Any], return_exceptions: bool) -> list[Any]:
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors and not return_exceptions:
        raise errors[0]
    return results

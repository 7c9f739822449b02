"""Logic written once for sync and async callers (the "sans-I/O" style).

A step function is a generator: it yields each request it needs (an HTTP request, an LLM call), receives the
result (an error is thrown back into it, where it may be caught) and returns its answer. :func:`drive` runs the
requests in the calling thread; :func:`adrive` awaits them, so an async caller holds no thread per call.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")
Steps = Generator[Request, Any, Result]


def drive(steps: Generator[Request, Any, Result], execute: Callable[[Request], Any]) -> Result:
    """Run ``steps`` to its answer, each request through ``execute``."""
    try:
        request = next(steps)
        while True:
            try:
                value = execute(request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(value)
    except StopIteration as stop:
        return stop.value


async def adrive(steps: Generator[Request, Any, Result], execute: Callable[[Request], Awaitable[Any]]) -> Result:
    """:func:`drive` with each request awaited."""
    try:
        request = next(steps)
        while True:
            try:
                value = await execute(request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(value)
    except StopIteration as stop:
        return stop.value


async def acall(obj: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.a<method>(...)`` awaited where ``obj`` has that async twin (no thread held), else ``obj.<method>(...)`` in
    a worker thread (local compute, or a user's class without async methods)."""
    native = getattr(obj, "a" + method, None)
    if native is not None:
        return await native(*args, **kwargs)
    return await asyncio.to_thread(getattr(obj, method), *args, **kwargs)


class LoopGate:
    """At most ``limit`` requests in flight on each event loop, across every call that shares this gate (a
    semaphore per loop: an asyncio semaphore belongs to the loop it is used on)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = \
            weakref.WeakKeyDictionary()

    async def gather(self, fn: Callable[[Any], Awaitable[Any]], items: list[Any]) -> list[Any]:
        """``await fn(item)`` for each item through the gate; results in input order, an exception in its item's
        place."""
        loop = asyncio.get_running_loop()
        gate = self._by_loop.setdefault(loop, asyncio.Semaphore(self.limit))

        async def one(item: Any) -> Any:
            async with gate:
                return await fn(item)

        return list(await asyncio.gather(*(one(i) for i in items), return_exceptions=True))

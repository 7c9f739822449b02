"""A framework's own model (a LangChain chat model, a LlamaIndex ``LLM``) as the core's
:class:`~reasonir_rag.protocols.LLM`.

Both framework packages subclass :class:`FrameworkLLM` and implement :meth:`FrameworkLLM._call` (one prompt through
the framework's model, returning its text and, when asked, the top log-probs of its first token) and its async twin
:meth:`FrameworkLLM._acall`. Everything else is here once: checking prompts, running a batch on a few threads or as
tasks on the caller's event loop (each with a copy of the caller's ``contextvars``, so the framework's callbacks and
instrumentation see every call as a child of the caller's run or span), folding log-probs onto the reranker's
digits, token counts without a local tokenizer, and which reranker mode and prompt layout such a model can serve
(:func:`rerank_layout`).

A chat model scores the reranker's answer prefix as the start of the assistant turn (``template="chat"``: the last
message is an assistant message to be continued); a completion model scores the raw prompt (``template="raw"``).
Log-probs are used only where the model was asked to expose them; otherwise the reranker generates and parses its
answer, and says so once in the log.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from reasonir_rag._common.steps import LoopGate
from reasonir_rag.errors import InvalidInputError, LLMError, UnsupportedError
from reasonir_rag.llm.base import OptionalTokenizer, fold_logprobs, is_continuation, validate_prompts
from reasonir_rag.types import Message, Prompt

logger = logging.getLogger(__name__)

# exception class names (anywhere in the MRO) that mean "the service is not there right now", not "this prompt"
_TRANSIENT = frozenset({"APIConnectionError", "APITimeoutError", "RateLimitError", "InternalServerError",
                        "ConnectionError", "TimeoutError", "ServiceUnavailableError"})


@dataclass(frozen=True)
class Settings:
    """The generation settings of one call, as the core's callers give them."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    frequency_penalty: float = 0.0


@dataclass(frozen=True)
class Reply:
    """What one call returned: the text, and the first generated token's top log-probs (token, log-prob) when
    they were asked for."""

    text: str
    top_logprobs: list[tuple[str, float]] | None = None


class FrameworkLLM(OptionalTokenizer, ABC):
    """The :class:`~reasonir_rag.protocols.LLM` protocol over a framework's model; subclasses implement :meth:`_call`.

    ``is_chat``: the model takes messages (a string prompt is sent as one user message); else it completes text.
    ``logprobs``: the model returns the top log-probs of the tokens it generates (``top_logprobs`` of them).
    ``tokenizer`` (optional, a ``transformers`` tokenizer): exact token counts and cuts; without it counts are the
    core's conservative estimate (3 bytes per token).
    """

    def __init__(self, model: Any, model_name: str, *, is_chat: bool, logprobs: bool, top_logprobs: int = 20,
                 tokenizer: Any = None, max_concurrency: int = 8):
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InvalidInputError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        self.model, self.model_name = model, model_name
        self.is_chat, self.logprobs, self.top_logprobs = is_chat, logprobs, top_logprobs
        self.tokenizer, self.max_concurrency = tokenizer, max_concurrency
        self._gate = LoopGate(max_concurrency)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, model={self.model_name!r})"

    @abstractmethod
    def _call(self, prompt: str | list[dict[str, str]], settings: Settings, *, logprobs: bool) -> Reply:
        """One prompt through the framework's model (in the caller's context: its callbacks see the call)."""

    async def _acall(self, prompt: str | list[dict[str, str]], settings: Settings, *, logprobs: bool) -> Reply:
        """:meth:`_call` through the framework's async API; subclasses override it (this default runs the sync call
        in a worker thread, for a framework without one)."""
        return await asyncio.to_thread(self._call, prompt, settings, logprobs=logprobs)

    # ------------------------------------------------------------------ the LLM protocol
    def generate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        items = validate_prompts(prompts, "generate")
        settings = Settings(max_tokens, temperature, top_p, seed, tuple(stop or ()), frequency_penalty)
        return self._map(lambda p: self._call(p, settings, logprobs=False).text, items, return_exceptions)

    async def agenerate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        """:meth:`generate` through the framework's async call (:meth:`_acall`), ``max_concurrency`` at a time."""
        items = validate_prompts(prompts, "agenerate")
        settings = Settings(max_tokens, temperature, top_p, seed, tuple(stop or ()), frequency_penalty)

        async def one(prompt: str | list[dict[str, str]]) -> str:
            return (await self._acall(prompt, settings, logprobs=False)).text

        return await self._amap(one, items, return_exceptions)

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """The first generated token's top log-probs folded onto ``candidates`` (surrounding spaces ignored);
        a candidate outside the top ``top_logprobs`` is missing from the result."""
        items = self._scoring_inputs(prompts, shared_prefix)

        def one(prompt: str | list[dict[str, str]]) -> dict[str, float]:
            reply = self._call(_joined(shared_prefix, prompt), Settings(max_tokens=1), logprobs=True)
            return fold_logprobs(reply.top_logprobs or [], candidates)

        return self._map(one, items, return_exceptions)

    async def anext_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """:meth:`next_token_logprobs` through the framework's async call."""
        items = self._scoring_inputs(prompts, shared_prefix)

        async def one(prompt: str | list[dict[str, str]]) -> dict[str, float]:
            reply = await self._acall(_joined(shared_prefix, prompt), Settings(max_tokens=1), logprobs=True)
            return fold_logprobs(reply.top_logprobs or [], candidates)

        return await self._amap(one, items, return_exceptions)

    def render_chat(self, messages: Sequence[Message], *, add_generation_prompt: bool = True,
                    continue_final_message: bool = False) -> str:
        """A completion model with a local tokenizer renders its chat template here; a chat model never does (the
        framework's model applies its own template, so the reranker sends it messages)."""
        if self.is_chat or self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            raise UnsupportedError(f"{self!r} renders no chat template locally")
        text: str = self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt and not continue_final_message,
            continue_final_message=continue_final_message)
        return text

    # ------------------------------------------------------------------ helpers for subclasses
    @staticmethod
    def continues(prompt: str | list[dict[str, str]]) -> bool:
        """True when ``prompt`` ends in an assistant message the model must continue (the reranker's prefix)."""
        return not isinstance(prompt, str) and is_continuation(prompt)

    def prompt_text(self, prompt: str | list[dict[str, str]]) -> str:
        """What a completion model is sent: a string as it is; messages in the local tokenizer's chat template,
        else their contents one block each (the model has no template to apply)."""
        if isinstance(prompt, str):
            return prompt
        try:
            return self.render_chat(prompt, continue_final_message=self.continues(prompt))
        except UnsupportedError:
            return "\n\n".join(m["content"] for m in prompt)

    # ------------------------------------------------------------------ internals
    def _scoring_inputs(self, prompts: Sequence[Prompt], shared_prefix: str) -> list[str | list[dict[str, str]]]:
        if not self.logprobs:
            raise UnsupportedError(f"{self!r} was not set up to return log-probs (e.g. ChatOpenAI(logprobs=True), "
                                   "OpenAILike(logprobs=True)); use the reranker's mode='generate'")
        items = validate_prompts(prompts, "next_token_logprobs")
        if shared_prefix and any(not isinstance(p, str) for p in items):
            raise InvalidInputError("shared_prefix works with string prompts only")
        if self.is_chat and any(isinstance(p, str) for p in items):
            raise UnsupportedError(f"{self!r} is a chat model: it scores message prompts whose last message is the "
                                   "assistant's answer prefix (the reranker's template='chat')")
        return items

    def _failure(self, exc: Exception) -> Exception:
        """What one failed call leaves in its place: the core's own errors as they are, the framework's named
        (and marked transient when the service, not the prompt, failed)."""
        if isinstance(exc, (InvalidInputError, UnsupportedError)):
            return exc
        return LLMError(f"{self.model_name!r} ({type(self.model).__name__}) failed: {type(exc).__name__}: {exc}",
                        transient=_is_transient(exc))

    def _map(self, fn: Callable[[Any], Any], items: list[Any], return_exceptions: bool) -> list[Any]:
        """``fn`` over ``items`` on up to ``max_concurrency`` threads, each in a copy of the caller's context."""
        def guarded(item: Any) -> Any:
            try:
                return fn(item)
            except Exception as exc:
                return self._failure(exc)

        if len(items) <= 1 or self.max_concurrency == 1:
            results = [guarded(item) for item in items]
        else:
            with ThreadPoolExecutor(min(self.max_concurrency, len(items))) as pool:
                futures = [pool.submit(contextvars.copy_context().run, guarded, item) for item in items]
                results = [f.result() for f in futures]
        return _gathered(results, return_exceptions)

    async def _amap(self, fn: Callable[[Any], Awaitable[Any]], items: list[Any],
                    return_exceptions: bool) -> list[Any]:
        """``await fn(item)`` for each item on the caller's event loop, at most ``max_concurrency`` in flight across
        concurrent calls (each task in a copy of the caller's context, so callbacks and spans nest as in
        :meth:`_map`)."""
        results = await self._gate.gather(fn, items)
        return _gathered([self._failure(r) if isinstance(r, Exception) else r for r in results], return_exceptions)


def _gathered(results: list[Any], return_exceptions: bool) -> list[Any]:
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is not None and not return_exceptions:
        raise failed
    return results


def _joined(shared_prefix: str, prompt: str | list[dict[str, str]]) -> str | list[dict[str, str]]:
    return shared_prefix + prompt if isinstance(prompt, str) else prompt


def _is_transient(exc: BaseException) -> bool:
    return any(cls.__name__ in _TRANSIENT for cls in type(exc).__mro__)


class RerankLayout(TypedDict, total=False):
    """The reranker settings a framework's model decides (keyword arguments of ``QwenReranker``)."""

    mode: Literal["logits", "generate"]
    template: Literal["raw", "chat"]


def rerank_layout(llm: Any, mode: Literal["logits", "generate"] = "logits") -> RerankLayout:
    """The reranker's ``mode`` and ``template`` for ``llm``: a chat model gets ``template="chat"`` (its answer
    prefix continued in the assistant turn), a completion model ``"raw"``; ``mode="logits"`` on a model that
    returns no log-probs becomes ``"generate"``, with one warning. Core backends keep what they were given."""
    if not isinstance(llm, FrameworkLLM):
        return RerankLayout(mode=mode)
    if mode == "logits" and not llm.logprobs:
        logger.warning("%r returns no log-probs, so the reranker generates its answer and parses the score "
                       "(mode='generate'); for one forward pass per document ask the model for them "
                       "(ChatOpenAI(logprobs=True), OpenAILike(logprobs=True))", llm)
        mode = "generate"
    return RerankLayout(mode=mode, template="chat" if llm.is_chat else "raw")

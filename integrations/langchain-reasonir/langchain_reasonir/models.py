"""Any LangChain chat or completion model as the core's LLM: the rewriter, the reranker and the retriever take it.

The core's :class:`~reasonir_rag.llm.adapter.FrameworkLLM` does the batching, the log-prob folding and the token
counts; this class only calls the model. Each call goes through ``model.generate`` (``model.agenerate`` on the
async paths) with the callbacks, tags and
metadata of the run it is made in (LangChain's own child config), so every rewrite and rerank request is a child
LLM run with its token usage, in callbacks and in LangSmith.

OpenAI-family models (``ChatOpenAI``, ``OpenAI``, their subclasses) get the core's generation settings per call
(``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``, ``frequency_penalty``) and, for the reranker's
one-pass scores, ``logprobs`` (only when built with ``logprobs=True`` / ``logprobs=N``). A final assistant message
(the reranker's answer prefix) is continued with vLLM's ``continue_final_message``. Other models run with their own
settings (only ``stop`` is passed) and rerank in generate mode.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLanguageModel, BaseLLM
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables.config import ensure_config, patch_config, set_config_context
from langchain_core.runnables.utils import coro_with_context
from reasonir_rag.llm.adapter import FrameworkLLM, Reply, Settings

logger = logging.getLogger(__name__)

_ROLES: dict[str, type[BaseMessage]] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
_CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}
WHAT_TO_PASS = ("a LangChain chat or completion model (e.g. ChatOpenAI(model=..., base_url=..., logprobs=True)) "
                "or a reasonir_rag LLM backend (OpenAICompatibleLLM, TransformersLLM)")


def is_langchain_model(value: Any) -> bool:
    return isinstance(value, BaseLanguageModel)


def _openai_family(model: Any) -> bool:
    return any(cls.__module__.startswith("langchain_openai") for cls in type(model).__mro__)


class LangChainLLM(FrameworkLLM):
    """A LangChain ``BaseChatModel`` or ``BaseLLM`` behind the core's LLM protocol (see the module docstring)."""

    def __init__(self, model: Any, *, tokenizer: Any = None, max_concurrency: int = 8):
        if isinstance(model, LangChainLLM):
            model = model.model
        if not isinstance(model, (BaseChatModel, BaseLLM)):
            raise TypeError(f"expected {WHAT_TO_PASS}, got {type(model).__name__}")
        openai = _openai_family(model)
        chat = isinstance(model, BaseChatModel)
        # ChatOpenAI(logprobs=True, top_logprobs=N); OpenAI(logprobs=N)
        asked = getattr(model, "logprobs", None) if openai else None
        top = getattr(model, "top_logprobs", None) if chat else asked
        logprobs = asked is True if chat else _positive(asked)
        name = getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
        super().__init__(model, str(name), is_chat=chat, logprobs=logprobs,
                         top_logprobs=top if isinstance(top, int) and _positive(top) else 20, tokenizer=tokenizer,
                         max_concurrency=max_concurrency)
        self._openai = openai

    def _call(self, prompt: str | list[dict[str, str]], settings: Settings, *, logprobs: bool) -> Reply:
        batch, kwargs = self._request(prompt, settings, logprobs)
        return self._reply(self.model.generate(batch, **kwargs), logprobs)

    async def _acall(self, prompt: str | list[dict[str, str]], settings: Settings, *, logprobs: bool) -> Reply:
        """:meth:`_call` through ``model.agenerate`` (the model's own async client, no thread)."""
        batch, kwargs = self._request(prompt, settings, logprobs)
        return self._reply(await self.model.agenerate(batch, **kwargs), logprobs)

    def _request(self, prompt: str | list[dict[str, str]], settings: Settings,
                 logprobs: bool) -> tuple[list[Any], dict[str, Any]]:
        """``generate``'s arguments: the prompt, the settings, and the callbacks, tags and metadata of the run this
        call is made in (LangChain's child config), if any."""
        config = ensure_config()
        run = {"callbacks": config.get("callbacks"), "tags": config.get("tags"), "metadata": config.get("metadata")}
        batch = [_messages(prompt)] if self.is_chat else [self.prompt_text(prompt)]
        return batch, {**run, **self._kwargs(prompt, settings, logprobs)}

    def _reply(self, result: Any, logprobs: bool) -> Reply:
        generation = result.generations[0][0]
        info = generation.generation_info or {}
        if self.is_chat:
            info = {**getattr(getattr(generation, "message", None), "response_metadata", {}), **info}
        return Reply(generation.text, _top_logprobs(info.get("logprobs"), self.is_chat) if logprobs else None)

    def _kwargs(self, prompt: str | list[dict[str, str]], settings: Settings, logprobs: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"stop": list(settings.stop)} if settings.stop else {}
        if not self._openai:
            return kwargs
        kwargs.update(max_tokens=settings.max_tokens, temperature=settings.temperature, top_p=settings.top_p)
        if settings.seed is not None:
            kwargs["seed"] = settings.seed
        if settings.frequency_penalty:
            kwargs["frequency_penalty"] = settings.frequency_penalty
        if logprobs:
            kwargs.update({"logprobs": True, "top_logprobs": self.top_logprobs} if self.is_chat
                          else {"logprobs": self.top_logprobs})
        if self.continues(prompt):
            kwargs["extra_body"] = {**(getattr(self.model, "extra_body", None) or {}), **_CONTINUE}
        return kwargs


def _messages(prompt: str | list[dict[str, str]]) -> list[BaseMessage]:
    if isinstance(prompt, str):
        return [HumanMessage(prompt)]
    return [_ROLES.get(m["role"], HumanMessage)(m["content"]) for m in prompt]


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _top_logprobs(raw: Any, chat: bool) -> list[tuple[str, float]]:
    """The first token's top log-probs from an OpenAI-style ``logprobs`` payload (chat or completions)."""
    if not raw:
        return []
    if chat:
        content = raw.get("content") if isinstance(raw, dict) else getattr(raw, "content", None)
        if not content:
            return []
        first = content[0]
        tops = first.get("top_logprobs") if isinstance(first, dict) else getattr(first, "top_logprobs", None)
        return [(_get(t, "token"), float(_get(t, "logprob"))) for t in tops or []]
    tops = raw.get("top_logprobs") if isinstance(raw, dict) else getattr(raw, "top_logprobs", None)
    return [(str(tok), float(lp)) for tok, lp in ((tops or [{}])[0] or {}).items()]


def _get(item: Any, key: str) -> Any:
    return item[key] if isinstance(item, dict) else getattr(item, key)


def run_as_child(run: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with ``run``'s child callbacks as the current config, so the LLM calls it makes are
    child runs of ``run`` (LangChain's own mechanism: ``set_config_context``)."""
    config = patch_config(ensure_config(), callbacks=run.get_child())
    with set_config_context(config) as context:
        return context.run(fn, *args, **kwargs)


async def arun_as_child(run: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """:func:`run_as_child` for a coroutine function: awaited as a task in the child config's context."""
    config = patch_config(ensure_config(), callbacks=run.get_child())
    with set_config_context(config) as context:
        return await coro_with_context(fn(*args, **kwargs), context)

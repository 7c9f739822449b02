"""Any LlamaIndex ``LLM`` as the core's LLM: the reranker and the query transform take it (default ``Settings.llm``).

The core's :class:`~reasonir_rag.llm.adapter.FrameworkLLM` does the batching (each call in a copy of the caller's
context, so LlamaIndex's instrumentation nests the ``LLMChatStartEvent`` / ``LLMCompletionStartEvent`` spans under
the caller's span), the log-prob folding and the token counts; this class only calls ``llm.chat`` /
``llm.complete`` (``achat`` / ``acomplete`` on the async paths).

LlamaIndex's OpenAI classes (``OpenAI``, ``OpenAILike``, their subclasses) get the core's generation settings per
call (the model's own ``max_tokens``, when set, wins: that is how those classes merge them) and return log-probs
when built with ``logprobs=True`` (``top_logprobs`` of them); a final assistant message (the reranker's answer
prefix) is continued with vLLM's ``continue_final_message``. Other LLMs run with their own settings.
"""

from __future__ import annotations

import logging
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import LLM as LlamaIndexBaseLLM
from reasonir_rag.llm.adapter import FrameworkLLM, Reply, Settings

logger = logging.getLogger(__name__)

_ROLES = {"system": MessageRole.SYSTEM, "user": MessageRole.USER, "assistant": MessageRole.ASSISTANT}
_CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}
WHAT_TO_PASS = ("a LlamaIndex LLM (e.g. OpenAILike(model=..., api_base=..., is_chat_model=True, logprobs=True)), "
                "a reasonir_rag LLM backend (OpenAICompatibleLLM, TransformersLLM) or a spec string "
                "('openai:MODEL', 'hf:PATH')")


def is_llama_index_llm(value: Any) -> bool:
    return isinstance(value, LlamaIndexBaseLLM)


def _openai_family(llm: Any) -> bool:
    return any(cls.__module__.startswith("llama_index.llms.openai") for cls in type(llm).__mro__)


class LlamaIndexLLM(FrameworkLLM):
    """A LlamaIndex ``LLM`` behind the core's LLM protocol (see the module docstring)."""

    def __init__(self, llm: Any, *, tokenizer: Any = None, max_concurrency: int = 8):
        if isinstance(llm, LlamaIndexLLM):
            llm = llm.model
        if not is_llama_index_llm(llm):
            raise TypeError(f"expected {WHAT_TO_PASS}, got {type(llm).__name__}")
        openai = _openai_family(llm)
        top = getattr(llm, "top_logprobs", None)
        super().__init__(llm, str(llm.metadata.model_name), is_chat=bool(llm.metadata.is_chat_model),
                         logprobs=openai and getattr(llm, "logprobs", None) is True,
                         top_logprobs=top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 20,
                         tokenizer=tokenizer, max_concurrency=max_concurrency)
        self._openai = openai

    def _call(self, prompt: str | list[dict[str, str]], settings: Settings, *, logprobs: bool) -> Reply:
        kwargs = self._kwargs(prompt, settings)
        if self.is_chat:
            return _reply(self.model.chat(_messages(prompt), **kwargs), logprobs)
        return _reply(self.model.complete(self.prompt_text(prompt), formatted=True, **kwargs), logprobs)

    async def _acall(self, prompt: str | list[dict[str, str]], settings: Settings, *, logprobs: bool) -> Reply:
        """:meth:`_call` through ``llm.achat`` / ``llm.acomplete`` (the LLM's own async client, no thread)."""
        kwargs = self._kwargs(prompt, settings)
        if self.is_chat:
            return _reply(await self.model.achat(_messages(prompt), **kwargs), logprobs)
        return _reply(await self.model.acomplete(self.prompt_text(prompt), formatted=True, **kwargs), logprobs)

    def _kwargs(self, prompt: str | list[dict[str, str]], settings: Settings) -> dict[str, Any]:
        if not self._openai:
            return {}
        kwargs: dict[str, Any] = {"max_tokens": settings.max_tokens, "temperature": settings.temperature,
                                  "top_p": settings.top_p}
        if settings.seed is not None:
            kwargs["seed"] = settings.seed
        if settings.stop:
            kwargs["stop"] = list(settings.stop)
        if settings.frequency_penalty:
            kwargs["frequency_penalty"] = settings.frequency_penalty
        if self.continues(prompt):
            extra = (getattr(self.model, "additional_kwargs", None) or {}).get("extra_body") or {}
            kwargs["extra_body"] = {**extra, **_CONTINUE}
        return kwargs


def _messages(prompt: str | list[dict[str, str]]) -> list[ChatMessage]:
    if isinstance(prompt, str):
        return [ChatMessage(role=MessageRole.USER, content=prompt)]
    return [ChatMessage(role=_ROLES.get(m["role"], MessageRole.USER), content=m["content"]) for m in prompt]


def _reply(response: Any, logprobs: bool) -> Reply:
    """A ``ChatResponse`` or ``CompletionResponse`` as the core's reply (the first token's top log-probs if asked)."""
    text = (response.message.content or "") if hasattr(response, "message") else response.text
    raw = response.logprobs
    return Reply(text, [(lp.token, float(lp.logprob)) for lp in (raw[0] if raw else [])] if logprobs else None)


def as_core_llm(llm: Any, *, default_settings: bool = False) -> Any:
    """A core LLM for ``llm``: a LlamaIndex ``LLM`` adapted, a core backend or spec string as it is, ``None`` with
    ``default_settings`` as ``Settings.llm`` (LlamaIndex's own default); anything else is refused, naming what to
    pass."""
    if llm is None and default_settings:
        from llama_index.core import Settings as LlamaSettings

        llm = LlamaSettings.llm
    if is_llama_index_llm(llm):
        return LlamaIndexLLM(llm)
    if isinstance(llm, (str, FrameworkLLM)) or (callable(getattr(llm, "next_token_logprobs", None))
                                                and callable(getattr(llm, "generate", None))):
        return llm
    raise TypeError(f"expected {WHAT_TO_PASS}, got {type(llm).__name__}")

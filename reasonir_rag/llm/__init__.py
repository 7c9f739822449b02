"""LLM backends behind one small protocol: local transformers and any OpenAI-compatible server.

``import reasonir_rag.llm`` is light: torch, transformers and openai load when a backend is built.
"""

from __future__ import annotations

import math
import os
from typing import Any

from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.llm.openai_backend import OpenAICompatibleLLM
from reasonir_rag.llm.transformers_backend import TransformersLLM
from reasonir_rag.protocols import LLM
from reasonir_rag.types import Message, Prompt

__all__ = ["LLM", "LLMError", "Message", "OpenAICompatibleLLM", "Prompt", "TransformersLLM", "load_llm"]


def load_llm(spec: str, *, base_url: str | None = None, api_key: str | None = None, device: str | None = None,
             dtype: Any = None, tokenizer: Any = None, timeout: float | None = None) -> LLM:
    """A backend from a short spec: ``openai:MODEL`` (a served model), ``hf:PATH_OR_ID`` (local transformers).

    A bare name goes to the server when ``base_url`` (or ``OPENAI_BASE_URL``) is set, else to transformers.
    ``timeout``: seconds a served model's request may take to answer (the read timeout; default
    :class:`OpenAICompatibleLLM`'s 120 s; the connect timeout stays its own, 5 s); a local model has none.
    """
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise InvalidInputError(f"the LLM timeout must be a positive number of seconds, got {timeout!r}")
    if not spec or not isinstance(spec, str):
        raise InvalidInputError("an LLM spec is needed, e.g. 'openai:Qwen/Qwen2.5-7B-Instruct' or 'hf:PATH_OR_HUB_ID'")
    kind, sep, name = spec.partition(":")
    if not sep or kind not in ("openai", "hf", "transformers"):
        kind, name = ("openai" if (base_url or os.environ.get("OPENAI_BASE_URL")) else "hf"), spec
    if not name:
        raise InvalidInputError(f"LLM spec {spec!r} names no model")
    if kind == "openai":
        timeouts: dict[str, Any] = {} if timeout is None else {"timeout": float(timeout)}
        return OpenAICompatibleLLM(name, base_url=base_url, api_key=api_key, tokenizer=tokenizer, **timeouts)
    return TransformersLLM(name, device=device, dtype=dtype)

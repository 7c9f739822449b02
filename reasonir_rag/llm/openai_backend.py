"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API) as an :class:`~reasonir_rag.llm.base.LLM`.

Requests run in a bounded thread pool; 429, 5xx, timeouts and connection errors are retried with exponential
backoff (honouring ``Retry-After``), then an :class:`LLMError` names the URL and the attempts. The API key is
only handed to the ``openai`` client: it is never logged, never in a repr and never in an error message.

Scoring the next token: a rendered string goes to ``/v1/completions`` (``max_tokens=1``, ``logprobs=k``); a
message list ending in an assistant prefix goes to ``/v1/chat/completions`` with vLLM's
``continue_final_message``. Only the server's top-k log-probs come back, so a candidate outside them is missing
from the result; callers renormalise over what is present (see :mod:`reasonir_rag.pipeline.reranker`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from reasonir_rag._common.openai_client import OpenAIClient, load_tokenizer, resolve_base_url
from reasonir_rag._common.tokens import cut_by_estimate, cut_to_tokens, estimate_tokens, special_tokens, token_ids
from reasonir_rag.errors import InvalidInputError, UnsupportedError
from reasonir_rag.llm.base import (
    is_continuation,
    logsumexp,
    validate_prompts,
)
from reasonir_rag.types import Prompt

logger = logging.getLogger(__name__)



class OpenAICompatibleLLM:
    """A model behind an OpenAI-compatible HTTP API.

    ``tokenizer`` (a local folder, a hub id available offline, or a tokenizer object) is optional: with it
    token counts are exact and chat prompts are rendered locally and scored through ``/v1/completions``
    exactly like :class:`~reasonir_rag.llm.TransformersLLM` would; without it counts are a conservative
    estimate (3 bytes per token) and scoring uses the chat endpoint.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        max_concurrency: int = 8,
        max_retries: int = 4,
        timeout: float = 120.0,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        top_logprobs: int = 20,
        tokenizer: Any = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if not model:
            raise InvalidInputError("model must name the served model (e.g. the --served-model-name of a vLLM server)")
        if max_concurrency < 1 or max_retries < 0:
            raise InvalidInputError("max_concurrency must be >= 1 and max_retries >= 0")
        self.model_name = model
        self.base_url = resolve_base_url(base_url)
        self._http = OpenAIClient(self.base_url, api_key, label=f"model {model!r}", max_concurrency=max_concurrency,
                                  max_retries=max_retries, timeout=timeout, backoff=backoff, max_backoff=max_backoff)
        self.top_logprobs = top_logprobs
        self.extra_body = dict(extra_body or {})
        self.tokenizer = load_tokenizer(tokenizer)
        self._completion_extra = dict(self.extra_body)
        if self.tokenizer is not None and special_tokens(self.tokenizer) != ([], []):
            # rendered chat prompts already carry BOS; vLLM would add a second one
            self._completion_extra.setdefault("add_special_tokens", False)

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model_name!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ text helpers
    def render_chat(self, messages, *, add_generation_prompt: bool = True,
                    continue_final_message: bool = False) -> str:
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            raise UnsupportedError(f"{self!r} has no local tokenizer with a chat template; pass tokenizer=...")
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt and not continue_final_message,
            continue_final_message=continue_final_message)

    def tokenize(self, text: str) -> list[int] | None:
        return None if self.tokenizer is None else token_ids(self.tokenizer, text)

    def count_tokens(self, text: str) -> int:
        ids = self.tokenize(text)
        return estimate_tokens(text) if ids is None else len(ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` within ``max_tokens`` (exact with a tokenizer, else by the 3-byte estimate)."""
        if self.tokenizer is None:
            return cut_by_estimate(text, max_tokens)
        return cut_to_tokens(self.tokenizer, text, max_tokens)

    # ------------------------------------------------------------------ requests
    def generate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        """Chat prompts through ``/v1/chat/completions``, strings through ``/v1/completions``."""
        items = validate_prompts(prompts, "generate")
        params: dict[str, Any] = dict(model=self.model_name, max_tokens=max_tokens, temperature=temperature,
                                      top_p=top_p)
        if seed is not None:
            params["seed"] = seed
        if stop:
            params["stop"] = list(stop)
        if frequency_penalty:
            params["frequency_penalty"] = frequency_penalty

        def one(prompt: str | list[dict[str, str]]) -> str:
            if isinstance(prompt, str):
                r = self._http.call("completion", lambda: self._http.client.completions.create(
                    prompt=prompt, extra_body=self._completion_extra or None, **params))
                return r.choices[0].text or ""
            r = self._http.call("chat completion", lambda: self._http.client.chat.completions.create(
                messages=prompt, extra_body=self._chat_extra(prompt) or None, **params))
            return r.choices[0].message.content or ""

        return self._http.map(one, items, return_exceptions=return_exceptions)

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Top-k log-probs of the next token, folded onto ``candidates`` (matching ignores surrounding spaces)."""
        items = validate_prompts(prompts, "next_token_logprobs")
        if shared_prefix and any(not isinstance(p, str) for p in items):
            raise InvalidInputError("shared_prefix works with string prompts only")
        wanted = {c.strip() or c: c for c in candidates}
        params = dict(model=self.model_name, max_tokens=1, temperature=0.0)

        def one(prompt: str | list[dict[str, str]]) -> dict[str, float]:
            if isinstance(prompt, list) and getattr(self.tokenizer, "chat_template", None):
                prompt = self.render_chat(prompt, continue_final_message=is_continuation(prompt))
            if isinstance(prompt, str):
                r = self._http.call("completion", lambda: self._http.client.completions.create(
                    prompt=shared_prefix + prompt, logprobs=self.top_logprobs,
                    extra_body=self._completion_extra or None, **params))
                lp = r.choices[0].logprobs
                top = (lp.top_logprobs or [{}])[0] if lp is not None else {}
                pairs = list((top or {}).items())
            else:
                r = self._http.call("chat completion", lambda: self._http.client.chat.completions.create(
                    messages=prompt, logprobs=True, top_logprobs=self.top_logprobs,
                    extra_body=self._chat_extra(prompt) or None, **params))
                content = r.choices[0].logprobs.content if r.choices[0].logprobs else None
                pairs = [(t.token, t.logprob) for t in content[0].top_logprobs] if content else []
            found: dict[str, list[float]] = {}
            for token, logprob in pairs:
                key = token.strip() or token
                if key in wanted:
                    found.setdefault(wanted[key], []).append(float(logprob))
            return {c: logsumexp(v) for c, v in found.items()}

        return self._http.map(one, items, return_exceptions=return_exceptions)

    # ------------------------------------------------------------------ internals
    def _chat_extra(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        extra = dict(self.extra_body)
        if is_continuation(messages):
            extra.update(continue_final_message=True, add_generation_prompt=False)
        return extra

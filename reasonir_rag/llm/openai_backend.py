"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, a hosted API) as an :class:`~reasonir_rag.llm.base.LLM`.

Requests run in a bounded thread pool (``agenerate``: ``AsyncOpenAI`` under a semaphore); retries, timeouts and
errors are :mod:`reasonir_rag._common.openai_client`'s (openai's own retries, a 5 s connect timeout, an
:class:`LLMError` naming the URL and the attempts, the key never shown).

Scoring the next token, exact where the server allows it: with a local tokenizer the prompt goes to
``/v1/completions`` as token ids (tokenized exactly as :class:`~reasonir_rag.llm.TransformersLLM` does) with
vLLM's ``logprob_token_ids`` set to the candidates' ids, so each candidate's full-softmax log-prob comes back
whatever its rank. Whether the server honours it is checked once, on the first request; a server that does not
(another server, an older vLLM) gets the top-k path: ``logprobs=k`` on completions, or, for a message list ending
in an assistant prefix without a local chat template, ``/v1/chat/completions`` with vLLM's
``continue_final_message``. There a candidate outside the top k is missing from the result, and callers
renormalise over what is present (see :mod:`reasonir_rag.pipeline.reranker`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from reasonir_rag._common.openai_client import (
    CONNECT_RETRIES,
    CONNECT_TIMEOUT,
    OpenAIClient,
    load_tokenizer,
    resolve_base_url,
)
from reasonir_rag._common.steps import adrive, drive
from reasonir_rag._common.tokens import special_tokens, token_ids
from reasonir_rag.errors import InvalidInputError, LLMError, UnsupportedError
from reasonir_rag.llm.base import (
    OptionalTokenizer,
    fold_logprobs,
    is_continuation,
    validate_prompts,
)
from reasonir_rag.types import Prompt

logger = logging.getLogger(__name__)


class OpenAICompatibleLLM(OptionalTokenizer):
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
        connect_timeout: float = CONNECT_TIMEOUT,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        connect_retries: int = CONNECT_RETRIES,
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
                                  max_retries=max_retries, timeout=timeout, connect_timeout=connect_timeout,
                                  backoff=backoff, max_backoff=max_backoff, connect_retries=connect_retries)
        self.top_logprobs = top_logprobs
        self.extra_body = dict(extra_body or {})
        self.tokenizer = load_tokenizer(tokenizer)
        self._completion_extra = dict(self.extra_body)
        self._exact: bool | None = None  # does the server honour logprob_token_ids? learnt on the first scoring
        if self.tokenizer is not None and special_tokens(self.tokenizer) != ([], []):
            # rendered chat prompts already carry BOS; vLLM would add a second one
            self._completion_extra.setdefault("add_special_tokens", False)

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model_name!r}, base_url={self._http.shown_url!r})"

    # ------------------------------------------------------------------ text helpers
    def render_chat(self, messages, *, add_generation_prompt: bool = True,
                    continue_final_message: bool = False) -> str:
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            raise UnsupportedError(f"{self!r} has no local tokenizer with a chat template; pass tokenizer=...")
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt and not continue_final_message,
            continue_final_message=continue_final_message)

    # ------------------------------------------------------------------ requests
    def _generate_params(self, max_tokens: int, temperature: float, top_p: float, seed: int | None,
                         stop: Sequence[str] | None, frequency_penalty: float) -> dict[str, Any]:
        params: dict[str, Any] = dict(model=self.model_name, max_tokens=max_tokens, temperature=temperature,
                                      top_p=top_p)
        if seed is not None:
            params["seed"] = seed
        if stop:
            params["stop"] = list(stop)
        if frequency_penalty:
            params["frequency_penalty"] = frequency_penalty
        return params

    def generate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        """Chat prompts through ``/v1/chat/completions``, strings through ``/v1/completions``."""
        items = validate_prompts(prompts, "generate")
        params = self._generate_params(max_tokens, temperature, top_p, seed, stop, frequency_penalty)
        return self._http.map(lambda p: drive(self._generation(p, params), self._send), items,
                              return_exceptions=return_exceptions)

    async def agenerate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        """:meth:`generate` on ``AsyncOpenAI``: at most ``max_concurrency`` requests in flight, no threads."""
        items = validate_prompts(prompts, "agenerate")
        params = self._generate_params(max_tokens, temperature, top_p, seed, stop, frequency_penalty)
        return await self._http.amap(lambda p: adrive(self._generation(p, params), self._asend), items,
                                     return_exceptions=return_exceptions)

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Log-probs of the next token for ``candidates``: exact (``logprob_token_ids``) where the server takes
        it, else the top-k folded onto the candidates (matching ignores surrounding spaces)."""
        items, ids = self._scoring_inputs(prompts, candidates, shared_prefix)

        def one(prompt: str | list[dict[str, str]]) -> dict[str, float]:
            return drive(self._scoring(prompt, shared_prefix, candidates, ids), self._send)

        done: list[Any] = []
        # until the server has shown whether it honours logprob_token_ids, one prompt at a time (a prompt the
        # server rejects for itself, e.g. too long, tells nothing)
        while ids is not None and self._exact is None and len(done) < len(items):
            done += self._http.map(one, [items[len(done)]], return_exceptions=return_exceptions)
        return done + self._http.map(one, items[len(done):], return_exceptions=return_exceptions)

    async def anext_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """:meth:`next_token_logprobs` on ``AsyncOpenAI`` (the same requests, the same probe)."""
        items, ids = self._scoring_inputs(prompts, candidates, shared_prefix)

        async def one(prompt: str | list[dict[str, str]]) -> dict[str, float]:
            return await adrive(self._scoring(prompt, shared_prefix, candidates, ids), self._asend)

        done: list[Any] = []
        while ids is not None and self._exact is None and len(done) < len(items):
            done += await self._http.amap(one, [items[len(done)]], return_exceptions=return_exceptions)
        return done + await self._http.amap(one, items[len(done):], return_exceptions=return_exceptions)

    # ------------------------------------------------------------------ the requests, written once (steps.py)
    def _send(self, request: _Request) -> Any:
        http = self._http
        return http.call(request.what, lambda: request.create(http.client))

    async def _asend(self, request: _Request) -> Any:
        http = self._http
        return await http.acall(request.what, lambda: request.create(http.async_client))

    def _generation(self, prompt: str | list[dict[str, str]],
                    params: dict[str, Any]) -> Generator[_Request, Any, str]:
        if isinstance(prompt, str):
            r = yield _Request("completion", dict(prompt=prompt, extra_body=self._completion_extra or None, **params))
            return r.choices[0].text or ""
        r = yield _Request("chat completion", dict(messages=prompt, extra_body=self._chat_extra(prompt) or None,
                                                   **params))
        return r.choices[0].message.content or ""

    def _scoring_inputs(self, prompts: Sequence[Prompt], candidates: Sequence[str],
                        shared_prefix: str) -> tuple[list[str | list[dict[str, str]]], list[int] | None]:
        items = validate_prompts(prompts, "next_token_logprobs")
        if shared_prefix and any(not isinstance(p, str) for p in items):
            raise InvalidInputError("shared_prefix works with string prompts only")
        return items, self._candidate_ids(candidates)

    def _scoring(self, prompt: str | list[dict[str, str]], shared_prefix: str, candidates: Sequence[str],
                 ids: list[int] | None) -> Generator[_Request, Any, dict[str, float]]:
        """One prompt's candidate log-probs: exact where the server honours ``logprob_token_ids`` (the first
        answer tells, and is remembered), else its top-k."""
        if ids is not None and self._exact is not False:
            try:
                r = yield self._exact_request(prompt, shared_prefix, ids)
                got = _exact_logprobs(r, ids, candidates)
            except LLMError as exc:
                if self._exact is not None or exc.transient or "logprob_token_ids" not in str(exc):
                    raise
                got = None
            if got is not None:
                if self._exact is None:
                    logger.info("%r returns exact log-probs for chosen token ids", self)
                self._exact = True
                return got
            if self._exact:
                raise LLMError(f"{self!r} stopped returning log-probs for the requested token ids")
            self._exact = False
            logger.warning("%r does not return log-probs for chosen token ids (vLLM's logprob_token_ids); "
                           "scores use its top-%d log-probs and may miss a digit", self, self.top_logprobs)
        request = self._top_request(prompt, shared_prefix)
        r = yield request
        return fold_logprobs(_top_pairs(r, chat=request.what == "chat completion"), candidates)

    def _candidate_ids(self, candidates: Sequence[str]) -> list[int] | None:
        """One token id per candidate, or None (no local tokenizer, or a candidate of several tokens)."""
        if self.tokenizer is None:
            return None
        ids = [token_ids(self.tokenizer, c) for c in candidates]
        return [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None

    def _prompt_ids(self, prompt: str | list[dict[str, str]], shared_prefix: str) -> list[int]:
        """The ids TransformersLLM scores: BOS (unless the text starts with it), the prefix, the prompt, each
        tokenized on its own."""
        text = prompt if isinstance(prompt, str) else self.render_chat(
            prompt, continue_final_message=is_continuation(prompt))
        head = special_tokens(self.tokenizer)[0]
        first = token_ids(self.tokenizer, shared_prefix) if shared_prefix else []
        rest = token_ids(self.tokenizer, text)
        body = first + rest
        return body if not head or body[: len(head)] == head else head + body

    def _exact_request(self, prompt: str | list[dict[str, str]], shared_prefix: str, ids: list[int]) -> _Request:
        extra = {**self.extra_body, "logprob_token_ids": ids, "return_tokens_as_token_ids": True}
        return _Request("completion", dict(model=self.model_name, prompt=self._prompt_ids(prompt, shared_prefix),
                                           max_tokens=1, temperature=0.0, logprobs=len(ids), extra_body=extra))

    def _top_request(self, prompt: str | list[dict[str, str]], shared_prefix: str) -> _Request:
        params: dict[str, Any] = dict(model=self.model_name, max_tokens=1, temperature=0.0)
        if isinstance(prompt, list) and getattr(self.tokenizer, "chat_template", None):
            prompt = self.render_chat(prompt, continue_final_message=is_continuation(prompt))
        if isinstance(prompt, str):
            return _Request("completion", dict(prompt=shared_prefix + prompt, logprobs=self.top_logprobs,
                                               extra_body=self._completion_extra or None, **params))
        return _Request("chat completion", dict(messages=prompt, logprobs=True, top_logprobs=self.top_logprobs,
                                                extra_body=self._chat_extra(prompt) or None, **params))

    # ------------------------------------------------------------------ internals
    def _chat_extra(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        extra = dict(self.extra_body)
        if is_continuation(messages):
            extra.update(continue_final_message=True, add_generation_prompt=False)
        return extra


@dataclass(frozen=True)
class _Request:
    """One request: ``what`` names it in errors ("completion" or "chat completion"), ``params`` are its arguments."""

    what: str
    params: dict[str, Any]

    def create(self, client: Any) -> Any:
        """The openai call on ``client`` (``OpenAI`` or ``AsyncOpenAI``: the latter returns a coroutine)."""
        endpoint = client.completions if self.what == "completion" else client.chat.completions
        return endpoint.create(**self.params)


def _exact_logprobs(r: Any, ids: list[int], candidates: Sequence[str]) -> dict[str, float] | None:
    """The candidates' log-probs from a ``logprob_token_ids`` answer, or None when the server ignored it."""
    lp = r.choices[0].logprobs
    top = (lp.top_logprobs or [None])[0] if lp is not None else None
    by_id = dict(top or {})
    wanted = {f"token_id:{i}": c for i, c in zip(ids, candidates, strict=True)}
    if not set(wanted) <= set(by_id):
        return None
    return {c: float(by_id[k]) for k, c in wanted.items()}


def _top_pairs(r: Any, *, chat: bool) -> list[tuple[str, float]]:
    """The first generated token's top (token, log-prob) pairs from a completions or chat answer."""
    if not chat:
        lp = r.choices[0].logprobs
        top = (lp.top_logprobs or [{}])[0] if lp is not None else {}
        return list((top or {}).items())
    content = r.choices[0].logprobs.content if r.choices[0].logprobs else None
    return [(t.token, t.logprob) for t in content[0].top_logprobs] if content else []


"""A local Hugging Face causal LM as an :class:`~reasonir_rag.llm.base.LLM`.

Batched, left-padded generation with the model's chat template; next-token log-probs from one forward pass.
With ``shared_prefix`` the prefix (for the reranker: the instructions and the query) runs once and its KV
cache is reused for every continuation, which gives the same numbers as running each prompt whole.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from reasonir_rag._common.batching import token_budget_batches
from reasonir_rag._common.devices import pick_device, pick_dtype
from reasonir_rag._common.tokens import cut_to_tokens, special_tokens, token_ids
from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, UnsupportedError
from reasonir_rag.llm.base import is_continuation, validate_prompts
from reasonir_rag.types import Prompt

logger = logging.getLogger(__name__)


class TransformersLLM:
    """A causal LM run in-process: bf16 on CUDA, fp32 on CPU (unless ``dtype`` says otherwise)."""

    def __init__(
        self,
        name_or_path: str,
        device: str | None = None,
        dtype: Any = None,
        *,
        batch_size: int = 16,
        max_tokens_per_batch: int | None = None,
        reuse_prefix: bool = True,
        trust_remote_code: bool = False,
        revision: str | None = None,
        use_safetensors: bool = True,
    ):
        torch = require("torch")
        transformers = require("transformers")
        self.model_name = str(name_or_path)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.model_name, revision=revision, trust_remote_code=trust_remote_code)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            self.model_name, dtype=self.dtype, revision=revision, trust_remote_code=trust_remote_code,
            use_safetensors=use_safetensors)  # pickled .bin weights only when the caller opts in
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.max_tokens_per_batch = max_tokens_per_batch or (65536 if self.device.startswith("cuda") else 8192)
        self.reuse_prefix = reuse_prefix
        self._bos: list[int] = special_tokens(self.tokenizer)[0]  # BOS for Llama-style tokenizers, none for Qwen
        self._torch = torch
        # transformers >= 5.2x names the KV cache argument and output ``cache``; older releases ``past_key_values``
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        logger.info("loaded %s on %s (%s)", self.model_name, self.device, self.dtype)

    def __repr__(self) -> str:
        return f"TransformersLLM({self.model_name!r}, device={self.device!r}, dtype={self.dtype})"

    # ------------------------------------------------------------------ text helpers
    def render_chat(self, messages, *, add_generation_prompt: bool = True,
                    continue_final_message: bool = False) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise UnsupportedError(f"{self.model_name} has no chat template; pass rendered string prompts")
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt and not continue_final_message,
            continue_final_message=continue_final_message)

    def tokenize(self, text: str) -> list[int]:
        return token_ids(self.tokenizer, text)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest start of ``text`` within ``max_tokens`` tokens, cut on a token boundary of the original."""
        return cut_to_tokens(self.tokenizer, text, max_tokens)

    def _prompt_text(self, prompt: str | list[dict[str, str]]) -> str:
        if isinstance(prompt, str):
            return prompt
        return self.render_chat(prompt, continue_final_message=is_continuation(prompt))

    def _encode(self, text: str) -> list[int]:
        """Token ids of a whole prompt: the tokenizer's BOS is added unless the text already starts with it."""
        ids = self.tokenize(text)
        if self._bos and ids[: len(self._bos)] != self._bos:
            ids = self._bos + ids
        return ids

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompts: Sequence[Prompt], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
        seed: int | None = None, stop: Sequence[str] | None = None, return_exceptions: bool = False,
        frequency_penalty: float = 0.0,
    ) -> list[Any]:
        """Left-padded batched generation; greedy at temperature 0, sampled (seeded when ``seed``) above.
        ``frequency_penalty`` is OpenAI's: each token's logit minus the penalty times its count so far in the
        generated text."""
        torch = self._torch
        items = validate_prompts(prompts, "generate")
        rows = [self._encode(self._prompt_text(p)) for p in items]
        if seed is not None:
            torch.manual_seed(seed)
        pad = self.tokenizer.pad_token_id
        budget = max(self.max_tokens_per_batch, max((len(r) for r in rows), default=1) + max_tokens)
        kwargs: dict[str, Any] = dict(max_new_tokens=max_tokens, pad_token_id=pad, do_sample=temperature > 0)
        if frequency_penalty:
            kwargs["logits_processor"] = [_FrequencyPenalty(frequency_penalty, torch)]
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)

        def run(batch: list[int]) -> list[str]:
            ids, mask = self._left_pad([rows[i] for i in batch], pad)
            for processor in kwargs.get("logits_processor", ()):
                processor.prompt_length = ids.shape[1]
            with torch.inference_mode():
                gen = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            texts = self.tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)
            return [_cut_at_stop(t, stop) for t in texts]

        batches = token_budget_batches([len(r) + max_tokens for r in rows], budget, self.batch_size)
        return _run_batches(batches, run, len(rows), return_exceptions, "generation")

    # ------------------------------------------------------------------ scoring
    def candidate_ids(self, candidates: Sequence[str]) -> list[int]:
        """The token id of each candidate; each must be exactly one token for this tokenizer."""
        ids = []
        for c in candidates:
            toks = self.tokenize(c)
            if len(toks) != 1:
                raise InvalidInputError(
                    f"candidate {c!r} is {len(toks)} tokens for {self.model_name}; it must be one token")
            ids.append(toks[0])
        return ids

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidates: Sequence[str], *, shared_prefix: str = "",
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Exact log-probs (full softmax) of each candidate at the next position, one forward pass per batch."""
        items = validate_prompts(prompts, "next_token_logprobs")
        cand_ids = self.candidate_ids(candidates)
        if shared_prefix and any(not isinstance(p, str) for p in items):
            raise InvalidInputError("shared_prefix works with string prompts only")
        if shared_prefix:
            prefix = self._encode(shared_prefix)
            rows = [self.tokenize(p) for p in items]  # type: ignore[arg-type]
        else:
            prefix = []
            rows = [self._encode(self._prompt_text(p)) for p in items]
        reuse = bool(prefix) and self.reuse_prefix
        if not reuse and prefix:
            rows = [prefix + r for r in rows]
        cache, prefix_last = self._prefix_state(prefix) if reuse else (None, None)

        def run(batch: list[int]) -> list[dict[str, float]]:
            if reuse:
                logp = self._score_with_cache([rows[i] for i in batch], cache, len(prefix), prefix_last)
            else:
                logp = self._score_plain([rows[i] for i in batch])
            return [dict(zip(candidates, row, strict=True)) for row in logp[:, cand_ids].tolist()]

        batches = token_budget_batches([max(1, len(r)) for r in rows], self.max_tokens_per_batch, self.batch_size)
        return _run_batches(batches, run, len(rows), return_exceptions, "scoring")

    def _left_pad(self, rows: list[list[int]], pad: int, prefix_len: int = 0):
        torch = self._torch
        longest = max(len(r) for r in rows)
        ids = torch.full((len(rows), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), prefix_len + longest), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for r, row in enumerate(rows):
            if row:
                ids[r, longest - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[r, prefix_len + longest - len(row):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _last_logprobs(self, **inputs) -> Any:
        torch = self._torch
        with torch.inference_mode():
            logits = self.model(**inputs, logits_to_keep=1).logits[:, -1, :]
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def _score_plain(self, rows: list[list[int]]) -> Any:
        ids, mask = self._left_pad(rows, self.tokenizer.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self._last_logprobs(input_ids=ids, attention_mask=mask, position_ids=positions)

    def _prefix_state(self, prefix: list[int]) -> tuple[Any, Any]:
        torch = self._torch
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return getattr(out, self._cache_arg), torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()

    def _score_with_cache(self, rows: list[list[int]], prefix_cache: Any, prefix_len: int, prefix_last: Any) -> Any:
        """Continuations after a cached prefix: ``[prefix][pads][row]``, pads masked, positions continue the prefix."""
        torch = self._torch
        result = torch.empty((len(rows), prefix_last.shape[-1]), dtype=torch.float32)
        nonempty = [i for i, r in enumerate(rows) if r]
        for i, r in enumerate(rows):
            if not r:
                result[i] = prefix_last[0]
        if not nonempty:
            return result
        sub = [rows[i] for i in nonempty]
        ids, mask = self._left_pad(sub, self.tokenizer.pad_token_id, prefix_len)
        positions = (mask.cumsum(-1) - 1)[:, prefix_len:].clamp(min=prefix_len)
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(sub))
        logp = self._last_logprobs(input_ids=ids, attention_mask=mask, position_ids=positions,
                                   use_cache=True, **{self._cache_arg: cache})
        result[nonempty] = logp
        return result


def _run_batches(batches: list[list[int]], run: Callable[[list[int]], list[Any]], n: int, return_exceptions: bool,
                 what: str) -> list[Any]:
    """Results of ``run`` per index. A failing batch is split and retried (an out-of-memory on a big batch
    loses nothing); an item that fails alone gets its exception (``return_exceptions``) or raises."""
    out: list[Any] = [None] * n
    pending = list(reversed(batches))
    while pending:
        batch = pending.pop()
        try:
            results = run(batch)
        except Exception as exc:
            if len(batch) > 1:
                logger.warning("%s failed for a batch of %d (%s); retrying it in halves", what, len(batch), exc)
                half = len(batch) // 2
                pending.extend([batch[half:], batch[:half]])
                continue
            if not return_exceptions:
                raise
            logger.warning("%s failed for prompt #%d: %s", what, batch[0], exc)
            out[batch[0]] = exc
            continue
        for i, result in zip(batch, results, strict=True):
            out[i] = result
    return out


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    if not stop:
        return text
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]


class _FrequencyPenalty:
    """OpenAI's ``frequency_penalty`` as a transformers logits processor: the generated tokens' counts (not the
    prompt's) times the penalty, subtracted from the next token's logits."""

    def __init__(self, penalty: float, torch: Any):
        self.penalty, self.torch, self.prompt_length = penalty, torch, 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated = input_ids[:, self.prompt_length:]
        if generated.shape[1] == 0:
            return scores
        counts = self.torch.zeros_like(scores)
        counts.scatter_add_(1, generated, self.torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.penalty * counts

"""ReasonIR embeddings from a served model: an OpenAI-compatible embeddings endpoint (vLLM's pooling runner).

The client formats ReasonIR's prefixes and L2-normalises, so any server that returns a mean-pooled vector
works. How close that is to the faithful encoder depends on the server (measured on the tiny model with
vLLM 0.32 for CPU; see ``benchmarks/scale.py --served-gap`` and the README):

- ``pooling="server"`` (any ``/v1/embeddings``): the server's mean runs over every token, the instruction
  prefix and BOS included, where ReasonIR pools the text tokens only. A causal server
  (plain ``LlamaModel``) also drops ReasonIR's bidirectional attention.
- ``pooling="text-tokens"`` (vLLM's ``/pooling`` with ``task="token_embed"``): the server returns each
  token's last hidden state and the client averages the text tokens only. Served as a bidirectional
  model (``--hf-overrides '{"architectures": ["LlamaBidirectionalModel"], "pooling": "avg"}'``) this is
  ReasonIR's exact maths. It moves ``tokens x dim`` floats per text instead of ``dim``: the price of
  fidelity until vLLM can pool a token range server-side (its ``GritLM`` pooler, which did, was removed
  in vLLM 0.28).

With a ``tokenizer`` (the model's, a local folder or object) texts go out as token ids built exactly as
:class:`~reasonir_rag.encoding.encoder.ReasonIREncoder` builds them (``prefix + text`` tokenized as one string with BOS,
cut at the end to fit ``max_length``); without one they go out as strings and the server tokenizes them.

Requests are batched and sent on a bounded thread pool; retries and error messages are those of
:class:`~reasonir_rag.llm.OpenAICompatibleLLM`: both go through ``reasonir_rag._common.openai_client.OpenAIClient``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from reasonir_rag._common.openai_client import (
    CONNECT_RETRIES,
    CONNECT_TIMEOUT,
    OpenAIClient,
    load_tokenizer,
    resolve_base_url,
)
from reasonir_rag._common.steps import adrive, drive
from reasonir_rag._common.tokens import estimate_tokens, special_tokens
from reasonir_rag.encoding.config import (
    EncoderConfig,
    check_preset,
    encoder_fingerprint,
    preset_settings,
    spec_overrides,
)
from reasonir_rag.encoding.inputs import PrefixedEncoderMixin, validate_texts
from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger(__name__)
# what goes over the wire for one text (a string, or token ids), where its text tokens start, whether it was cut
_Row = tuple[str | list[int], int, bool]

POOLINGS = ("server", "text-tokens")
SPEC_SCHEME = "openai:"

_BIDIRECTIONAL = json.dumps({"architectures": ["LlamaBidirectionalModel"], "pooling": "avg"})
VLLM_SERVE_ARGS: dict[str, list[str]] = {
    # ReasonIR's maths: bidirectional, every token's state back, the client pools the text tokens
    # (use pooling="text-tokens")
    "faithful": ["--runner", "pooling", "--hf-overrides", _BIDIRECTIONAL,
                 "--pooler-config", json.dumps({"task": "token_embed"})],
    # bidirectional, but the server's mean includes BOS and the instruction (pooling="server")
    "bidirectional-mean": ["--runner", "pooling", "--hf-overrides", _BIDIRECTIONAL],
    # a plain LlamaModel: causal attention and the instruction in the mean (pooling="server")
    "causal-mean": ["--runner", "pooling", "--pooler-config", json.dumps({"pooling_type": "MEAN"})],
}
"""``vllm serve MODEL`` arguments for each way of serving ReasonIR (measured in ``benchmarks/scale.py``)."""

__all__ = ["POOLINGS", "VLLM_SERVE_ARGS", "InvalidInputError", "OpenAIEmbeddingsEncoder", "from_spec", "parse_spec"]


class OpenAIEmbeddingsEncoder(PrefixedEncoderMixin):
    """The :class:`~reasonir_rag.encoding.encoder.ReasonIREncoder` surface over an embeddings server.

    ``model`` is the served model name; ``base_url`` ends in ``/v1`` (default ``$OPENAI_BASE_URL``);
    the API key comes from ``api_key`` or ``$OPENAI_API_KEY`` and is never logged. ``weights`` names the
    served weights in the :attr:`fingerprint` (an index built by the local encoder can be searched through
    a faithful server by passing that encoder's ``fingerprint["weights"]``).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        pooling: str = "server",
        tokenizer: Any = None,
        preset: str = "reasonir",
        name: str | None = None,
        weights: str | None = None,
        dim: int | None = None,
        max_length: int | None = None,
        document_prefix: str | None = None,
        batch_size: int = 32,
        max_concurrency: int = 4,
        max_retries: int = 4,
        timeout: float = 120.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        connect_retries: int = CONNECT_RETRIES,
        backoff: float = 0.5,
    ):
        if pooling not in POOLINGS:
            raise InvalidInputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        check_preset(preset)
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        self._http = OpenAIClient(resolve_base_url(base_url), api_key, label=f"model {model!r}",
                                  max_concurrency=max_concurrency, max_retries=max_retries, timeout=timeout,
                                  connect_timeout=connect_timeout, connect_retries=connect_retries, backoff=backoff)
        self.tokenizer = load_tokenizer(tokenizer)
        if pooling == "text-tokens" and self.tokenizer is None:
            raise InvalidInputError("pooling='text-tokens' needs the model's tokenizer (tokenizer=FOLDER) to know "
                                    "where the prefix ends and the text begins")
        settings = preset_settings(preset, max_length, document_prefix)
        settings["pool_prefix"] = settings["pool_prefix"] or pooling == "server"
        self.config = EncoderConfig(name=name or model, preset=preset, **settings)
        self.model = model
        self.pooling = pooling
        self.weights = weights or f"served:{model}"
        self.batch_size = batch_size
        self._dim = dim
        self._dim_lock = threading.Lock()
        self._prefix_cache: dict[str, list[int]] = {}
        self._head: list[int] = []
        self._tail: list[int] = []
        if self.tokenizer is not None:
            self._head, self._tail = special_tokens(self.tokenizer)

    # ------------------------------------------------------------------ facts
    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def dim(self) -> int:
        """The served model's width (asked once from the server when not given)."""
        with self._dim_lock:
            if self._dim is None:
                probe = drive(self._embedding([self._row("dimension probe", self.document_prefix)]), self._send)
                self._dim = int(probe.shape[1])
            return self._dim

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What an index must agree on with the encoder that queries it (as the local encoder's)."""
        pooling = "mean-text-tokens" if self.pooling == "text-tokens" else "served-mean-all-tokens"
        return encoder_fingerprint(self.config, weights=self.weights, dim=self.dim, pooling=pooling)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone: exact with a tokenizer, else a conservative estimate."""
        if self.tokenizer is None:
            return estimate_tokens(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def text_budget(self, prefix: str = "") -> int:
        """How many text tokens fit after ``prefix`` within ``max_length`` (estimated without a tokenizer)."""
        if self.tokenizer is not None:
            return super().text_budget(prefix)
        return self.config.max_length - estimate_tokens(prefix) - 1

    def load_spec(self) -> tuple[str, dict[str, Any]]:
        """``(spec, kwargs)`` that rebuild this client in another process (see :func:`from_spec`)."""
        kwargs: dict[str, Any] = {"pooling": self.pooling}
        if self.tokenizer is not None:
            path = getattr(self.tokenizer, "name_or_path", None)
            if path:
                kwargs["tokenizer"] = str(path)
        if self.config.name != self.model:
            kwargs["name"] = self.config.name
        if self.weights != f"served:{self.model}":
            kwargs["weights"] = self.weights
        kwargs.update(spec_overrides(self.config))
        return f"{SPEC_SCHEME}{self.model}@{self.base_url}", kwargs

    def __repr__(self) -> str:
        return f"OpenAIEmbeddingsEncoder({self.model!r}, base_url={self._http.shown_url!r}, pooling={self.pooling!r})"

    # ------------------------------------------------------------------ encoding
    def encode_queries(self, texts: Sequence[str] | str, *, instruction: str | None = None, task: str | None = None,
                       show_progress: bool | None = None) -> np.ndarray:
        """Queries with ReasonIR's instruction prefix; ``task`` picks a BRIGHT task's instruction."""
        return self.encode(texts, prefix=self.query_prefix(instruction=instruction, task=task), what="queries")

    def encode_documents(self, texts: Sequence[str] | str, *, show_progress: bool | None = None) -> np.ndarray:
        """Documents with ReasonIR's document prefix."""
        return self.encode(texts, prefix=self.document_prefix, what="documents")

    async def aencode_queries(self, texts: Sequence[str] | str, *, instruction: str | None = None,
                              task: str | None = None) -> np.ndarray:
        """:meth:`encode_queries` on ``AsyncOpenAI`` (no thread held; ``max_concurrency`` requests in flight)."""
        return await self.aencode(texts, prefix=self.query_prefix(instruction=instruction, task=task), what="queries")

    async def aencode_documents(self, texts: Sequence[str] | str) -> np.ndarray:
        """:meth:`encode_documents` on ``AsyncOpenAI``."""
        return await self.aencode(texts, prefix=self.document_prefix, what="documents")

    def encode(self, texts: Sequence[str] | str, *, prefix: str, show_progress: bool | None = None,
               what: str = "texts") -> np.ndarray:
        """Embed ``prefix + text`` for each text: float32 ``(n, dim)``, L2-normalised, input order kept."""
        items, unique, batches = self._batches(texts, prefix, what)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._assemble(items, unique, self._http.map(lambda rows: drive(self._embedding(rows), self._send),
                                                            batches))

    async def aencode(self, texts: Sequence[str] | str, *, prefix: str, what: str = "texts") -> np.ndarray:
        """:meth:`encode` with the requests awaited."""
        items, unique, batches = self._batches(texts, prefix, what)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = await self._http.amap(lambda rows: adrive(self._embedding(rows), self._asend), batches)
        return self._assemble(items, unique, parts)

    # ------------------------------------------------------------------ internals
    def _batches(self, texts: Sequence[str] | str, prefix: str,
                 what: str) -> tuple[list[str], list[str], list[list[_Row]]]:
        """The checked texts, the distinct ones, and their wire rows in request batches."""
        items = validate_texts(texts, what)
        unique = list(dict.fromkeys(items))
        rows = [self._row(t, prefix) for t in unique]
        cut = sum(1 for r in rows if r[2])
        if cut:
            logger.warning("truncated %d of %d distinct %s to fit max_length=%d", cut, len(unique), what,
                           self.config.max_length)
        return items, unique, [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]

    def _assemble(self, items: list[str], unique: list[str], parts: list[np.ndarray]) -> np.ndarray:
        vectors = np.concatenate(parts, axis=0)
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        position = {t: i for i, t in enumerate(unique)}
        return vectors[[position[t] for t in items]]

    def _row(self, text: str, prefix: str) -> _Row:
        """What goes over the wire for one text, where its text tokens start, whether it was truncated."""
        if self.tokenizer is None:
            return prefix + text, 0, False
        rows, ranges, cut = self._token_rows(prefix, [text])
        return rows[0], ranges[0][0], cut[0]

    def _send(self, request: tuple[str, Callable[[Any], Any]]) -> Any:
        what, create = request
        return self._http.call(what, lambda: create(self._http.client))

    async def _asend(self, request: tuple[str, Callable[[Any], Any]]) -> Any:
        what, create = request
        return await self._http.acall(what, lambda: create(self._http.async_client))

    def _embedding(self, rows: list[_Row]) -> Generator[tuple[str, Callable[[Any], Any]], Any, np.ndarray]:
        """One batch's vectors, written once for both callers: yields its request (steps.py), reads the answer."""
        inputs = [r[0] for r in rows]
        if self.pooling == "server":
            # token ids already carry BOS: vLLM must not add another; strings get the server's BOS
            extra = {"add_special_tokens": False} if self.tokenizer is not None else None
            resp = yield "embeddings", lambda client: client.embeddings.create(
                model=self.model, input=inputs, encoding_format="base64", extra_body=extra)
            data = sorted(resp.data, key=lambda d: d.index)
            out = np.stack([_decode(d.embedding) for d in data]).astype(np.float32)
        else:
            url = self.base_url.removesuffix("/v1") + "/pooling"
            body = {"model": self.model, "input": inputs, "task": "token_embed", "use_activation": False,
                    "add_special_tokens": False, "encoding_format": "base64"}
            resp = yield "token pooling", lambda client: client.post(url, body=body, cast_to=object)
            data = sorted(resp["data"], key=lambda d: d["index"])
            means = []
            for (row, start, _), item in zip(rows, data, strict=True):
                tokens = _decode(item["data"]).reshape(len(row), -1)
                means.append(tokens[start:].astype(np.float64).mean(axis=0))
            out = np.stack(means).astype(np.float32)
        if out.shape[0] != len(rows):
            raise InvalidInputError(f"{self._http.shown_url} returned {out.shape[0]} embeddings for {len(rows)} inputs")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if not np.all(np.isfinite(out)) or np.any(norms == 0):
            raise InvalidInputError(f"{self._http.shown_url} returned a zero or non-finite embedding")
        return out / norms



def _decode(value: Any) -> np.ndarray:
    """A vector from the wire: base64 little-endian float32 or a JSON list."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4")
    return np.asarray(value, dtype=np.float32).reshape(-1)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"openai:MODEL@URL"`` (or ``"openai:MODEL"``, URL from ``$OPENAI_BASE_URL``) -> ``(model, url)``."""
    if not spec.startswith(SPEC_SCHEME):
        raise InvalidInputError(f"not a served-encoder spec: {spec!r} (expected 'openai:MODEL@URL')")
    body = spec[len(SPEC_SCHEME) :]
    model, sep, url = body.partition("@")
    if not model or (sep and not url):
        raise InvalidInputError(f"bad served-encoder spec {spec!r}: expected 'openai:MODEL@http://host:port/v1'")
    return model, (url or None)


def from_spec(spec: str, **kwargs: Any) -> OpenAIEmbeddingsEncoder:
    """The client for ``"openai:MODEL@URL"`` (the hook ``encoder.load_spec``-style loaders call)."""
    model, url = parse_spec(spec)
    return OpenAIEmbeddingsEncoder(model, url, **kwargs)

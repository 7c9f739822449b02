"""The ReasonIR encoder: faithful prompts and pooling, fast length-sorted batching.

Faithful to ReasonIR/GritLM: ``BOS + prefix + text`` through a bidirectional Llama; the mean runs over
the text tokens only (the prefix attends but is not pooled); L2-normalised. The prefix and the text
are tokenized separately and joined as ids, so the prefix is always the same tokens and truncation
cuts the text, never the prefix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reasonir_rag._common.batching import token_budget_batches
from reasonir_rag._common.devices import pick_device, pick_dtype
from reasonir_rag._deps import require
from reasonir_rag.encoding import backbones as _backbones
from reasonir_rag.encoding import packed
from reasonir_rag.encoding.cache import EmbeddingCache, cache_key
from reasonir_rag.encoding.instructions import DEFAULT_INSTRUCTION, DOCUMENT_PREFIX, QUERY_TEMPLATE, resolve_task
from reasonir_rag.errors import EncoderOutOfMemoryError, InvalidInputError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "reasonir/ReasonIR-8B"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderConfig:
    """What defines the embeddings a model produces (the parts that must match between index and query)."""

    name: str
    preset: str
    query_template: str  # "" when the model takes no query instruction
    document_prefix: str
    default_instruction: str
    pool_prefix: bool  # True: the mean includes the prefix and special tokens (sentence-transformers)
    max_length: int


PRESETS: dict[str, dict[str, Any]] = {
    "reasonir": dict(
        query_template=QUERY_TEMPLATE,
        document_prefix=DOCUMENT_PREFIX,
        default_instruction=DEFAULT_INSTRUCTION,
        pool_prefix=False,
        max_length=2048,
    ),
    "minilm": dict(query_template="", document_prefix="", default_instruction="", pool_prefix=True, max_length=256),
}


def _is_oom(exc: BaseException) -> bool:
    torch = require("torch")
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def validate_texts(texts: Sequence[str] | str | None, what: str = "texts") -> list[str]:
    """The inputs as a list of non-empty strings, or one error naming every bad item."""
    if texts is None:
        raise InvalidInputError(f"{what} must be a list of strings, got None")
    if isinstance(texts, str):
        texts = [texts]
    items = list(texts)
    problems: list[str] = []
    cleaned: list[str] = []
    repaired = 0
    for i, text in enumerate(items):
        if not isinstance(text, str):
            problems.append(f"#{i} is {type(text).__name__}, not str")
        elif not text.strip():
            problems.append(f"#{i} is empty or whitespace only")
        else:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: replaced, as documented
                text = text.encode("utf-8", "replace").decode("utf-8")
                repaired += 1
            cleaned.append(text)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise InvalidInputError(f"{len(problems)} of {len(items)} {what} cannot be embedded: {shown}")
    if repaired:
        logger.warning("%d %s held invalid unicode (lone surrogates); replaced with '?'", repaired, what)
    return cleaned


class PrefixedEncoderMixin:
    """What every encoder backend (local model, served model) shares: prefixes, async wrappers, prefix ids."""

    config: EncoderConfig
    tokenizer: Any
    _prefix_cache: dict[str, list[int]]
    encode_queries: Callable[..., np.ndarray]  # each backend's own
    encode_documents: Callable[..., np.ndarray]

    def query_prefix(self, *, instruction: str | None = None, task: str | None = None) -> str:
        """The exact text placed before a query (empty for models without instructions)."""
        if instruction is not None and task is not None:
            raise InvalidInputError("pass instruction= or task=, not both")
        if task is not None:
            instruction = resolve_task(task)
        if not self.config.query_template:
            return ""
        return self.config.query_template.format(instruction=instruction or self.config.default_instruction)

    @property
    def document_prefix(self) -> str:
        return self.config.document_prefix

    async def aencode_queries(self, texts: Sequence[str] | str, *, instruction: str | None = None,
                              task: str | None = None) -> np.ndarray:
        """``encode_queries`` in a worker thread, so an event loop keeps serving while the model runs."""
        return await asyncio.to_thread(self.encode_queries, texts, instruction=instruction, task=task)

    async def aencode_documents(self, texts: Sequence[str] | str) -> np.ndarray:
        """``encode_documents`` in a worker thread."""
        return await asyncio.to_thread(self.encode_documents, texts)

    def _prefix_ids(self, prefix: str) -> list[int]:
        if prefix not in self._prefix_cache:
            self._prefix_cache[prefix] = self.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        return self._prefix_cache[prefix]


class ReasonIREncoder(PrefixedEncoderMixin):
    """Embeds queries and documents the way ReasonIR does. Build it with :meth:`from_pretrained`."""

    def __init__(
        self,
        backbones: list[_backbones.Backbone],
        config: EncoderConfig,
        *,
        cache: EmbeddingCache | None = None,
        batch_size: int = 64,
        max_tokens_per_batch: int | None = None,
        show_progress: bool | None = None,
        attention: str = "auto",
        compile: bool | str = False,
        compile_bucket: int = 256,
    ):
        if not backbones:
            raise InvalidInputError("at least one loaded backbone is needed")
        self.config = config
        self._backbones = backbones
        self.cache = cache
        self.batch_size = batch_size
        on_gpu = str(backbones[0].device).startswith("cuda")
        self.max_tokens_per_batch = max_tokens_per_batch or (65536 if on_gpu else 8192)
        self.show_progress = show_progress
        self._budget_lock = threading.Lock()
        tok = self.tokenizer
        with_specials = tok("x", add_special_tokens=True)["input_ids"]
        plain = tok("x", add_special_tokens=False)["input_ids"]
        start = next(i for i in range(len(with_specials)) if with_specials[i : i + len(plain)] == plain)
        self._head = with_specials[:start]  # BOS for Llama, [CLS] for BERT
        self._tail = with_specials[start + len(plain) :]  # [SEP] for BERT
        self._prefix_cache: dict[str, list[int]] = {}
        first = backbones[0]
        self._requested_attention = attention
        self.attention, why = packed.resolve_attention(attention, first.model, str(first.device), first.dtype)
        if self.attention == "packed":
            for backbone in backbones:
                packed.enable_packed(backbone.model)
        logger.info("attention=%r -> %s batches (%s)", attention, self.attention, why)
        self._compiled: dict[int, Any] = {}
        self._compile_backend = ("inductor" if compile is True else compile) if compile else None
        if self._compile_backend and self.attention != "packed":
            logger.warning("compile=%r applies to packed batches only; encoding runs uncompiled", compile)
            self._compile_backend = None
        self._bucket = compile_bucket if self._compile_backend else 1

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | None = None,
        *,
        preset: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        devices: Sequence[str] | None = None,
        cache: EmbeddingCache | str | None = None,
        batch_size: int = 64,
        max_tokens_per_batch: int | None = None,
        show_progress: bool | None = None,
        revision: str | None = None,
        use_safetensors: bool = True,
        attention: str = "auto",
        compile: bool | str = False,
    ) -> ReasonIREncoder:
        """Load ReasonIR-8B (default, or the name ``"reasonir"``), any ReasonIR-shaped Llama checkpoint (a hub id or
        a folder), or all-MiniLM-L6-v2 (``"minilm"``). Every command and adapter resolves a name through here.

        ``devices=["cuda:0", "cuda:1"]`` loads one replica per device and spreads batches over them.
        ``cache`` (a folder or an :class:`EmbeddingCache`) makes re-encoding unchanged text free.
        ``attention``: ``"packed"`` concatenates a batch into one row with block-diagonal attention (no padding;
        see :mod:`reasonir_rag.encoding.packed`), ``"padded"`` pads each batch to its longest text, ``"auto"`` (default)
        is packed on CUDA when a varlen flash kernel is there and padded otherwise. ``compile=True`` (or a
        ``torch.compile`` backend name) compiles the packed forward, padding each packed row to a multiple of
        256 tokens so that few shapes occur.
        """
        if name_or_path in PRESETS and preset in (None, name_or_path):  # "reasonir" / "minilm": the presets' models
            preset, name_or_path = name_or_path, None
        if preset is None:
            preset = "reasonir"
        if preset not in PRESETS:
            raise InvalidInputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        if preset == "minilm" and name_or_path in (None, "minilm"):
            folder = _backbones.minilm_folder()
            name = MINILM_NAME
        else:
            name = name_or_path or DEFAULT_MODEL
            folder = _backbones.resolve_local(name, revision=revision, use_safetensors=use_safetensors)
        targets = list(devices) if devices else [pick_device(device)]
        backbones = []
        for target in targets:
            torch_dtype = pick_dtype(dtype, target)
            if preset == "minilm":
                backbones.append(_backbones.load_bert(folder, device=target, dtype=torch_dtype,
                                                   use_safetensors=use_safetensors))
            else:
                backbones.append(_backbones.load_llama(folder, device=target, dtype=torch_dtype,
                                                    trust_remote_code=trust_remote_code,
                                                    use_safetensors=use_safetensors))
        settings = dict(PRESETS[preset])
        if max_length is not None:
            if max_length < 8:
                raise InvalidInputError(f"max_length must be >= 8, got {max_length}")
            settings["max_length"] = max_length
        config = EncoderConfig(name=name, preset=preset, **settings)
        if isinstance(cache, str):
            cache = EmbeddingCache(cache)
        logger.info("loaded %s (%s) on %s, %d dims", name, preset, ", ".join(targets), backbones[0].dim)
        return cls(backbones, config, cache=cache, batch_size=batch_size,
                   max_tokens_per_batch=max_tokens_per_batch, show_progress=show_progress, attention=attention,
                   compile=compile)

    # ------------------------------------------------------------------ facts
    @property
    def tokenizer(self) -> Any:
        return self._backbones[0].tokenizer

    @property
    def dim(self) -> int:
        return self._backbones[0].dim

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What an index must agree on with the encoder that queries it."""
        c = self.config
        return {
            "model": c.name,
            "weights": self._backbones[0].weights_id,
            "dim": self.dim,
            "query_template": c.query_template,
            "document_prefix": c.document_prefix,
            "pooling": "mean-all-tokens" if c.pool_prefix else "mean-text-tokens",
        }

    @property
    def _cache_namespace(self) -> str:
        extra = {"max_length": self.config.max_length, "dtype": str(self._backbones[0].dtype)}
        return json.dumps({**self.fingerprint, **extra}, sort_keys=True)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no prefix, no special tokens); lone surrogates count as encode() sees them."""
        text = text.encode("utf-8", "replace").decode("utf-8")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def text_budget(self, prefix: str = "") -> int:
        """How many text tokens fit after ``prefix`` within ``max_length``."""
        return self.config.max_length - len(self._head) - len(self._prefix_ids(prefix)) - len(self._tail)

    # ------------------------------------------------------------------ encoding
    def encode_queries(
        self, texts: Sequence[str] | str, *, instruction: str | None = None, task: str | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Queries with ReasonIR's instruction prefix; ``task`` picks a BRIGHT task's instruction."""
        prefix = self.query_prefix(instruction=instruction, task=task)
        return self.encode(texts, prefix=prefix, show_progress=show_progress, what="queries")

    def encode_documents(self, texts: Sequence[str] | str, *, show_progress: bool | None = None) -> np.ndarray:
        """Documents with ReasonIR's document prefix."""
        return self.encode(texts, prefix=self.config.document_prefix, show_progress=show_progress,
                           what="documents")

    def encode(
        self, texts: Sequence[str] | str, *, prefix: str, show_progress: bool | None = None,
        what: str = "texts",
    ) -> np.ndarray:
        """Embed ``prefix + text`` for each text: float32 ``(n, dim)``, L2-normalised, input order kept."""
        items = validate_texts(texts, what)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        unique = list(dict.fromkeys(items))
        position = {text: i for i, text in enumerate(unique)}
        vectors = np.zeros((len(unique), self.dim), dtype=np.float32)
        todo = list(range(len(unique)))
        keys: list[str] = []
        if self.cache is not None:
            namespace = self._cache_namespace
            keys = [cache_key(namespace, prefix, t) for t in unique]
            hits = self.cache.get_many(keys)
            for i, key in enumerate(keys):
                if key in hits:
                    vectors[i] = hits[key]
            todo = [i for i, key in enumerate(keys) if key not in hits]
            if hits:
                logger.info("embedding cache: %d of %d %s already encoded", len(unique) - len(todo),
                            len(unique), what)
        if todo:
            computed = self._encode_uncached([unique[i] for i in todo], prefix, show_progress, what)
            vectors[todo] = computed
            if self.cache is not None:
                try:
                    self.cache.put_many({keys[i]: computed[j] for j, i in enumerate(todo)})
                except OSError as exc:  # disk full, folder gone: the embeddings are still right, keep them
                    logger.warning("%s; returning the %d new embeddings uncached", exc, len(todo))
        for i, text in enumerate(items):
            out[i] = vectors[position[text]]
        return out

    # ------------------------------------------------------------------ internals

    def _rows(self, texts: list[str], prefix: str, what: str) -> tuple[list[list[int]], list[tuple[int, int]]]:
        prefix_ids = self._prefix_ids(prefix)
        budget = self.text_budget(prefix)
        if budget < 1:
            raise InvalidInputError(f"the prefix alone takes {len(prefix_ids)} tokens; max_length "
                             f"{self.config.max_length} leaves no room for text")
        head = self._head + prefix_ids
        text_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        rows, ranges, cut = [], [], 0
        for ids in text_ids:
            if len(ids) > budget:
                cut += 1
                ids = ids[:budget]
            row = head + ids + self._tail
            rows.append(row)
            ranges.append((0 if self.config.pool_prefix else len(head), len(row)))
        if cut:
            logger.warning("truncated %d of %d distinct %s to %d text tokens (max_length=%d)", cut, len(texts), what,
                           budget, self.config.max_length)
        return rows, ranges

    def _encode_uncached(self, texts: list[str], prefix: str, show_progress: bool | None, what: str) -> np.ndarray:
        rows, ranges = self._rows(texts, prefix, what)
        batches = self._plan([len(r) for r in rows])
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        show = show_progress if show_progress is not None else self.show_progress
        if show is None:
            show = len(rows) >= 512
        tqdm = require("tqdm").tqdm
        with tqdm(total=len(rows), desc=f"encoding {what}", unit=what[:3], disable=not show) as bar:
            for batch, emb in self._run_all(batches, rows, ranges):
                out[batch] = emb.numpy()
                bar.update(len(batch))
        return out

    def _run_all(self, batches: list[list[int]], rows, ranges) -> Iterator[tuple[list[int], Any]]:
        if len(self._backbones) == 1:
            for batch in batches:
                yield from self._run_with_backoff(self._backbones[0], batch, rows, ranges)
            return
        # Several devices: one worker thread per replica pulls batches from a shared queue.
        work: queue.Queue = queue.Queue()
        for batch in batches:
            work.put(batch)
        results: queue.Queue = queue.Queue()

        def worker(backbone: _backbones.Backbone) -> None:
            try:
                while True:
                    try:
                        batch = work.get_nowait()
                    except queue.Empty:
                        return
                    for item in self._run_with_backoff(backbone, batch, rows, ranges):
                        results.put(item)
            except BaseException as exc:  # surfaced in the caller's thread
                results.put(exc)
            finally:
                results.put(None)

        threads = [threading.Thread(target=worker, args=(b,), daemon=True) for b in self._backbones]
        for t in threads:
            t.start()
        finished = 0
        while finished < len(threads):
            item = results.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def _run_with_backoff(self, backbone, batch, rows, ranges) -> Iterator[tuple[list[int], Any]]:
        """Run a batch; on out-of-memory halve the token budget and retry smaller batches, dropping nothing."""
        pending = [batch]
        while pending:
            current = pending.pop()
            cost = self._cost([len(rows[i]) for i in current])
            if len(current) > 1 and cost > self.max_tokens_per_batch:
                pending.extend(reversed(self._split(current, rows)))
                continue
            try:
                emb = self._embed(backbone, [rows[i] for i in current], [ranges[i] for i in current])
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                if len(current) == 1:
                    raise EncoderOutOfMemoryError(
                        f"out of memory on one input of {len(rows[current[0]])} tokens on {backbone.device}; "
                        "lower max_length or use a device with more memory"
                    ) from exc
                with self._budget_lock:
                    self.max_tokens_per_batch = max(1, min(self.max_tokens_per_batch, cost) // 2)
                logger.warning("out of memory on %s with %d inputs; token budget now %d, retrying",
                               backbone.device, len(current), self.max_tokens_per_batch)
                torch = require("torch")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                pending.extend(reversed(self._split(current, rows)))
                continue
            yield current, emb

    def _plan(self, lengths: list[int]) -> list[list[int]]:
        """Length-sorted batches within the token budget: padded size (rows x longest) for padded batches, the
        total for packed ones (no padding, so the row count is free)."""
        if self.attention == "packed":
            return packed.packed_batches(lengths, self.max_tokens_per_batch)
        return token_budget_batches(lengths, self.max_tokens_per_batch, self.batch_size)

    def _cost(self, lengths: list[int]) -> int:
        """Tokens a batch puts through the model."""
        return sum(lengths) if self.attention == "packed" else len(lengths) * max(lengths)

    def _embed(self, backbone: _backbones.Backbone, rows: list[list[int]], ranges: list[tuple[int, int]]) -> Any:
        if self.attention != "packed":
            return _backbones.embed_batch(backbone, rows, ranges)
        if not self._compile_backend:
            return packed.embed_packed(backbone, rows, ranges)
        key = id(backbone)
        if key not in self._compiled:
            self._compiled[key] = packed.compile_model(backbone.model, self._compile_backend)
        try:
            return packed.embed_packed(backbone, rows, ranges, model=self._compiled[key], bucket=self._bucket)
        except Exception as exc:
            if _is_oom(exc):
                raise
            logger.warning("compiled packed forward failed (%s: %s); encoding uncompiled from now on",
                           type(exc).__name__, exc)
            self._compile_backend = None
            return packed.embed_packed(backbone, rows, ranges)

    def _split(self, batch: list[int], rows) -> list[list[int]]:
        parts = self._plan([len(rows[i]) for i in batch])
        if len(parts) == 1:  # budget still admits it whole: halve by count
            half = len(batch) // 2
            return [batch[:half], batch[half:]]
        return [[batch[j] for j in part] for part in parts]

    def __repr__(self) -> str:
        c = self.config
        devices = ", ".join(str(b.device) for b in self._backbones)
        return (f"ReasonIREncoder({c.name!r}, preset={c.preset!r}, dim={self.dim}, devices=[{devices}], "
                f"attention={self.attention!r})")

    def describe(self) -> dict[str, Any]:
        return {**asdict(self.config), "dim": self.dim, "attention": self.attention}

    def load_spec(self) -> tuple[str, dict[str, Any]]:
        """``(name_or_path, kwargs)`` that rebuild an equivalent encoder with :func:`shared_encoder`
        (what a pickled framework adapter carries instead of the weights)."""
        config = self.config
        kwargs: dict[str, Any]
        if config.preset == "minilm" and config.name == MINILM_NAME:
            name, kwargs = "minilm", {}
        else:
            name, kwargs = config.name, ({"preset": config.preset} if config.preset != "reasonir" else {})
        if config.max_length != PRESETS[config.preset]["max_length"]:
            kwargs["max_length"] = config.max_length
        if self._requested_attention != "auto":
            kwargs["attention"] = self._requested_attention
        return name, kwargs


_SHARED: dict[str, ReasonIREncoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_encoder(name_or_path: str | None = None, **kwargs: Any) -> ReasonIREncoder:
    """One loaded encoder per distinct set of arguments in this process.

    Framework adapters call this so that several embedding objects (or an unpickled copy) reuse the same
    weights instead of loading 16 GB again.
    """
    key = json.dumps({"name_or_path": name_or_path, **kwargs}, sort_keys=True, default=str)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = ReasonIREncoder.from_pretrained(name_or_path, **kwargs)
        return _SHARED[key]

"""The ReasonIR encoder: faithful prompts and pooling, fast length-sorted batching.

Faithful to ReasonIR/GritLM: ``prefix + text`` tokenized as one string (BOS first) through a bidirectional Llama;
the mean runs over the positions after ``BOS + prefix`` (the prefix attends but is not pooled; with an empty
prefix every token, BOS too, is pooled); L2-normalised. This module is the class users hold:
loading a name (:meth:`ReasonIREncoder.from_pretrained`), the embedding cache, repeated texts encoded once, the
fingerprint. What it is made of lives beside it: the presets and the config (``config.py``), input checks,
prefixes and token rows (``inputs.py``, shared with the served encoder), batches on the backbones
(``runner.py``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from reasonir_rag._common.devices import pick_device, pick_dtype
from reasonir_rag._common.progress import progress
from reasonir_rag._common.tokens import special_tokens
from reasonir_rag.encoding import backbones as _backbones
from reasonir_rag.encoding.cache import EmbeddingCache, cache_key
from reasonir_rag.encoding.config import (
    DEFAULT_MODEL,
    MINILM_NAME,
    PRESETS,
    EncoderConfig,
    encoder_fingerprint,
    preset_settings,
    resolve_name,
    spec_overrides,
)
from reasonir_rag.encoding.inputs import PrefixedEncoderMixin, validate_texts
from reasonir_rag.encoding.runner import BatchRunner
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.offline import minilm_folder

logger = logging.getLogger(__name__)

__all__ = [  # the config and input names are re-exported: this module is where users and adapters import them
    "DEFAULT_MODEL", "MINILM_NAME", "PRESETS", "EncoderConfig", "PrefixedEncoderMixin", "ReasonIREncoder",
    "shared_encoder", "validate_texts",
]


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
        self.show_progress = show_progress
        self._head, self._tail = special_tokens(self.tokenizer)  # BOS for Llama; [CLS] and [SEP] for BERT
        self._prefix_cache: dict[str, list[int]] = {}
        self._requested_attention = attention
        self._runner = BatchRunner(backbones, batch_size=batch_size, max_tokens_per_batch=max_tokens_per_batch,
                                   attention=attention, compile=compile, compile_bucket=compile_bucket)

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
        document_prefix: str | None = None,
    ) -> ReasonIREncoder:
        """Load ReasonIR-8B (default, or the name ``"reasonir"``), any ReasonIR-shaped Llama checkpoint (a hub id or
        a folder), or all-MiniLM-L6-v2 (``"minilm"``). Every command and adapter resolves a name through here.

        ``devices=["cuda:0", "cuda:1"]`` loads one replica per device and spreads batches over them.
        ``cache`` (a folder or an :class:`EmbeddingCache`) makes re-encoding unchanged text free.
        ``attention``: ``"packed"`` concatenates a batch into one row with block-diagonal attention (no padding;
        see :mod:`reasonir_rag.encoding.packed`), ``"padded"`` pads each batch to its longest text, ``"auto"`` (default)
        is packed on CUDA when a varlen flash kernel is there and padded otherwise. ``compile=True`` (or a
        ``torch.compile`` backend name) compiles the packed forward, padding each packed row to a multiple of
        256 tokens so that few shapes occur. ``document_prefix`` replaces the preset's text before every document
        (``""``: none, every token pooled, as GritLM's ``encode(instruction="")``, which retrieval-scaling's MMLU
        retrieval used); it is part of the :attr:`fingerprint`, so such a store is never searched with the default.
        """
        preset, name, bundled = resolve_name(name_or_path, preset)
        if bundled:
            folder = minilm_folder()
        else:
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
        config = EncoderConfig(name=name, preset=preset, **preset_settings(preset, max_length, document_prefix))
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
    def device(self) -> str:
        """Where the (first) replica runs, e.g. ``"cpu"`` or ``"cuda:0"``."""
        return str(self._backbones[0].device)

    @property
    def dtype(self) -> str:
        """The weights' precision, e.g. ``"torch.float32"``."""
        return str(self._backbones[0].dtype)

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What an index must agree on with the encoder that queries it."""
        pooling = "mean-all-tokens" if self.config.pool_prefix else "mean-text-tokens"
        return encoder_fingerprint(self.config, weights=self._backbones[0].weights_id, dim=self.dim, pooling=pooling)

    @property
    def attention(self) -> str:
        """How batches run: ``"packed"`` (one row, block-diagonal attention) or ``"padded"``."""
        return self._runner.attention

    @property
    def batch_size(self) -> int:
        """The most texts in one padded batch."""
        return self._runner.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._runner.batch_size = value

    @property
    def max_tokens_per_batch(self) -> int:
        """The token budget of one batch (halved, and kept lower, after an out-of-memory error)."""
        return self._runner.max_tokens_per_batch

    @max_tokens_per_batch.setter
    def max_tokens_per_batch(self, value: int) -> None:
        self._runner.max_tokens_per_batch = value

    @property
    def _compile_backend(self) -> str | None:
        """The ``torch.compile`` backend of packed batches (None: uncompiled, or fell back)."""
        return self._runner.compile_backend

    @property
    def _cache_namespace(self) -> str:
        extra = {"max_length": self.config.max_length, "dtype": str(self._backbones[0].dtype)}
        if self.config.joint_tokens:  # rows tokenized as one string (GritLM's), not the older prefix ids + text ids
            extra["tokens"] = "joint"
        return json.dumps({**self.fingerprint, **extra}, sort_keys=True)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no prefix, no special tokens); lone surrogates count as encode() sees them."""
        text = text.encode("utf-8", "replace").decode("utf-8")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ encoding
    def encode_queries(
        self, texts: Sequence[str] | str, *, instruction: str | None = None, task: str | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Queries with ReasonIR's instruction prefix; ``task`` picks a BRIGHT task's instruction;
        ``instruction=""`` is no prefix at all (GritLM's ``encode(instruction="")``, BOS pooled)."""
        prefix = self.query_prefix(instruction=instruction, task=task)
        return self.encode(texts, prefix=prefix, show_progress=show_progress, what="queries")

    def encode_documents(self, texts: Sequence[str] | str, *, show_progress: bool | None = None) -> np.ndarray:
        """Documents with the encoder's document prefix (ReasonIR's, or ``from_pretrained(document_prefix=...)``)."""
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
        rows, ranges, cut = self._token_rows(prefix, texts)
        if any(cut):
            logger.warning("truncated %d of %d distinct %s to %d text tokens (max_length=%d)", sum(cut), len(texts),
                           what, self.text_budget(prefix), self.config.max_length)
        return rows, ranges

    def _encode_uncached(self, texts: list[str], prefix: str, show_progress: bool | None, what: str) -> np.ndarray:
        rows, ranges = self._rows(texts, prefix, what)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        show = show_progress if show_progress is not None else self.show_progress
        if show is None:
            show = len(rows) >= 512
        unit = {"documents": "doc", "queries": "query"}.get(what, what)
        with progress(total=len(rows), desc=f"encoding {what}", unit=unit, show=show) as bar:
            for batch, emb in self._runner.run(rows, ranges):
                out[batch] = emb.numpy()
                bar.update(len(batch))
        return out

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
        kwargs.update(spec_overrides(config))
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

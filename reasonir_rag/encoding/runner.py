"""Token rows through the loaded backbones: batches under a token budget, every replica busy, out-of-memory survived.

The encoder hands this its rows (ids and the pooled range of each); here they become length-sorted batches
(padded, or packed into one row with block-diagonal attention, see :mod:`reasonir_rag.encoding.packed`), run on
one worker thread per replica, optionally through a compiled forward. On out-of-memory the token budget halves
and the batch is retried in smaller parts, so nothing is dropped; the lowered budget is kept for later calls.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from reasonir_rag._common.batching import token_budget_batches
from reasonir_rag._deps import require
from reasonir_rag.encoding import backbones as _backbones
from reasonir_rag.encoding import packed
from reasonir_rag.errors import EncoderOutOfMemoryError

logger = logging.getLogger("reasonir_rag.encoding.encoder")  # its messages are the encoder's

Rows = list[list[int]]
Ranges = list[tuple[int, int]]


def is_oom(exc: BaseException) -> bool:
    torch = require("torch")
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class BatchRunner:
    """Runs rows on ``backbones`` (one replica per device) in ``attention`` mode ("auto", "packed", "padded")."""

    def __init__(self, backbones: list[_backbones.Backbone], *, batch_size: int, max_tokens_per_batch: int | None,
                 attention: str, compile: bool | str, compile_bucket: int):
        self.backbones = backbones
        self.batch_size = batch_size
        on_gpu = str(backbones[0].device).startswith("cuda")
        self.max_tokens_per_batch = max_tokens_per_batch or (65536 if on_gpu else 8192)
        self._budget_lock = threading.Lock()
        first = backbones[0]
        self.attention, why = packed.resolve_attention(attention, first.model, str(first.device), first.dtype)
        if self.attention == "packed":
            for backbone in backbones:
                packed.enable_packed(backbone.model)
        logger.info("attention=%r -> %s batches (%s)", attention, self.attention, why)
        self._compiled: dict[int, Any] = {}
        self.compile_backend = ("inductor" if compile is True else compile) if compile else None
        if self.compile_backend and self.attention != "packed":
            logger.warning("compile=%r applies to packed batches only; encoding runs uncompiled", compile)
            self.compile_backend = None
        self._bucket = compile_bucket if self.compile_backend else 1

    def run(self, rows: Rows, ranges: Ranges) -> Iterator[tuple[list[int], Any]]:
        """``(row indices, their embeddings)`` for every row, batch by batch, in no set order."""
        batches = self.plan([len(r) for r in rows])
        if len(self.backbones) == 1:
            for batch in batches:
                yield from self._run_with_backoff(self.backbones[0], batch, rows, ranges)
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

        threads = [threading.Thread(target=worker, args=(b,), daemon=True) for b in self.backbones]
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

    def plan(self, lengths: list[int]) -> list[list[int]]:
        """Length-sorted batches within the token budget: padded size (rows x longest) for padded batches, the
        total for packed ones (no padding, so the row count is free)."""
        if self.attention == "packed":
            return packed.packed_batches(lengths, self.max_tokens_per_batch)
        return token_budget_batches(lengths, self.max_tokens_per_batch, self.batch_size)

    def _run_with_backoff(self, backbone: _backbones.Backbone, batch: list[int], rows: Rows,
                          ranges: Ranges) -> Iterator[tuple[list[int], Any]]:
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
                if not is_oom(exc):
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

    def _cost(self, lengths: list[int]) -> int:
        """Tokens a batch puts through the model."""
        return sum(lengths) if self.attention == "packed" else len(lengths) * max(lengths)

    def _embed(self, backbone: _backbones.Backbone, rows: Rows, ranges: Ranges) -> Any:
        if self.attention != "packed":
            return _backbones.embed_batch(backbone, rows, ranges)
        if not self.compile_backend:
            return packed.embed_packed(backbone, rows, ranges)
        key = id(backbone)
        if key not in self._compiled:
            self._compiled[key] = packed.compile_model(backbone.model, self.compile_backend)
        try:
            return packed.embed_packed(backbone, rows, ranges, model=self._compiled[key], bucket=self._bucket)
        except Exception as exc:
            if is_oom(exc):
                raise
            logger.warning("compiled packed forward failed (%s: %s); encoding uncompiled from now on",
                           type(exc).__name__, exc)
            self.compile_backend = None
            return packed.embed_packed(backbone, rows, ranges)

    def _split(self, batch: list[int], rows: Rows) -> list[list[int]]:
        parts = self.plan([len(rows[i]) for i in batch])
        if len(parts) == 1:  # budget still admits it whole: halve by count
            half = len(batch) // 2
            return [batch[:half], batch[half:]]
        return [[batch[j] for j in part] for part in parts]

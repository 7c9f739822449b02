"""What goes into a ReasonIR model, for both encoder backends: checked texts, the prefixes, the token rows.

A row is ``head + prefix ids + text ids + tail`` (``head``/``tail``: the tokenizer's own special tokens, BOS for
Llama, [CLS]/[SEP] for BERT). The prefix and the text are tokenized separately and joined as ids, so the prefix
is always the same tokens and truncation cuts the text, never the prefix. The local encoder and the served one
build their rows here, so a served model sees exactly the ids the local one embeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reasonir_rag.encoding.config import EncoderConfig
from reasonir_rag.encoding.instructions import resolve_task
from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger("reasonir_rag.encoding.encoder")  # its messages are the encoder's


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
    """What every encoder backend (local model, served model) shares: prefixes, async wrappers, token rows.

    A backend sets ``config``, ``tokenizer``, ``_head``/``_tail``
    (:func:`reasonir_rag._common.tokens.special_tokens`) and an empty ``_prefix_cache``.
    """

    config: EncoderConfig
    tokenizer: Any
    _head: list[int]
    _tail: list[int]
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

    def text_budget(self, prefix: str = "") -> int:
        """How many text tokens fit after ``prefix`` within ``max_length``."""
        return self.config.max_length - len(self._head) - len(self._prefix_ids(prefix)) - len(self._tail)

    def _prefix_ids(self, prefix: str) -> list[int]:
        if prefix not in self._prefix_cache:
            self._prefix_cache[prefix] = self.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        return self._prefix_cache[prefix]

    def _token_rows(self, prefix: str, text_ids: list[list[int]]) -> tuple[list[list[int]], int, list[bool]]:
        """The row of each text (its ids cut to fit ``max_length``), where the pooled part of every row starts,
        and which texts were cut."""
        prefix_ids = self._prefix_ids(prefix)
        budget = self.text_budget(prefix)
        if budget < 1:
            raise InvalidInputError(f"the prefix alone takes {len(prefix_ids)} tokens; max_length "
                                    f"{self.config.max_length} leaves no room for text")
        head = self._head + prefix_ids
        rows = [head + ids[:budget] + self._tail for ids in text_ids]
        return rows, (0 if self.config.pool_prefix else len(head)), [len(ids) > budget for ids in text_ids]

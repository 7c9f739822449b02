"""What goes into a ReasonIR model, for both encoder backends: checked texts, the prefixes, the token rows.

ReasonIR preset (``config.joint_tokens``), as GritLM's ``encode``: the row is ONE string ``prefix + text``
tokenized with the tokenizer's special tokens (BOS first for Llama), so the tokens at the seam are the ones GritLM
feeds (``'<|embed|>\\n' + '\\nText'`` gives the single token ``'>\\n\\n'``); the first
``len(tokenizer(prefix, add_special_tokens=True))`` positions are not pooled, and with an empty prefix nothing is
masked (BOS pooled too). A row longer than ``max_length`` is cut at its end as GritLM's ``truncation=True`` cuts
it, so only the text loses tokens. MiniLM preset (sentence-transformers): ``head + prefix ids + text ids + tail``
(``head``/``tail``: [CLS]/[SEP]), tokenized apart. The local encoder and the served one build their rows here, so
a served model sees exactly the ids the local one embeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from typing import Any

import numpy as np

from reasonir_rag._common.tokens import bounded_text
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
    if isinstance(texts, (Mapping, Set)) or not isinstance(texts, Iterable):  # a dict would embed its keys
        raise InvalidInputError(f"{what} must be a list of strings, got {type(texts).__name__}")
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
        if not self.config.query_template or instruction == "":
            return ""  # "" is no instruction at all (GritLM's encode(instruction="")); None is the default one
        if instruction is None:
            instruction = self.config.default_instruction
        return self.config.query_template.format(instruction=instruction)

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

    def _masked(self, prefix: str) -> int:
        """How many leading positions of a row are not pooled."""
        if self.config.pool_prefix:
            return 0
        if not self.config.joint_tokens:
            return len(self._head) + len(self._prefix_ids(prefix))
        if not prefix:  # GritLM: an empty instruction masks nothing, BOS included
            return 0
        key = "\0with-special-tokens\0" + prefix
        if key not in self._prefix_cache:
            self._prefix_cache[key] = self.tokenizer(prefix, add_special_tokens=True)["input_ids"]
        return len(self._prefix_cache[key])

    def _token_rows(self, prefix: str, texts: list[str]) -> tuple[list[list[int]], list[tuple[int, int]], list[bool]]:
        """The row of each text (cut to fit ``max_length``), the pooled range ``(start, end)`` of each row, and
        which texts were cut."""
        budget = self.text_budget(prefix)
        if budget < 1:
            raise InvalidInputError(f"the prefix alone takes {len(self._prefix_ids(prefix))} tokens; max_length "
                                    f"{self.config.max_length} leaves no room for text")
        start = self._masked(prefix)
        limit, tail = self.config.max_length, self._tail
        texts = [bounded_text(self.tokenizer, t, limit) for t in texts]  # a huge text is never tokenized whole
        if not self.config.joint_tokens:
            head = self._head + self._prefix_ids(prefix)
            text_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
            rows = [head + ids[:budget] + self._tail for ids in text_ids]
            return rows, [(start, len(row)) for row in rows], [len(ids) > budget for ids in text_ids]
        joint = self.tokenizer([prefix + t for t in texts], add_special_tokens=True)["input_ids"] if texts else []
        rows, ranges, cut = [], [], []
        for ids in joint:
            if len(ids) > limit:  # GritLM's truncation=True: the end goes, the special tokens stay
                ids = ids[: limit - len(tail)] + tail
                cut.append(True)
            else:
                cut.append(False)
            rows.append(ids)
            # a text wholly merged into the prefix's last token would pool nothing (NaN in GritLM): pool that token
            ranges.append((min(start, len(ids) - 1), len(ids)))
        return rows, ranges, cut

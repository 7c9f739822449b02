"""A LangChain retriever over the core ChromaStore, with optional rewriting and reranking.

Encoding, search and filtering are the core :class:`~reasonir_rag.index.store.ChromaStore`'s; rewriting and reranking go
through :class:`~langchain_reasonir.ReasonIRQueryRewriter` and :class:`~langchain_reasonir.ReasonIRReranker`, so
they appear as child runs in callbacks and traces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator
from reasonir_rag.pipeline.reranker import RERANK_CANDIDATES

from langchain_reasonir.document_compressors import RETRIEVAL_SCORE_KEY, ReasonIRReranker
from langchain_reasonir.rewriters import ReasonIRQueryRewriter

logger = logging.getLogger(__name__)

_CALL_OPTIONS = ("k", "fetch_k", "where", "task", "instruction")
_IGNORED = frozenset({"verbose"})  # BaseRetriever.invoke reads it and passes it on


class ReasonIRRetriever(BaseRetriever):
    """Retrieve from a :class:`~reasonir_rag.index.store.ChromaStore` with ReasonIR's query prefix.

    Each document's ``metadata["score"]`` is its cosine similarity; ``id`` is the store's id. With a
    ``reranker``, ``fetch_k`` candidates (ReasonIR: 100) are reranked against the original question and the best
    ``k`` kept. With a ``rewriter``, the question is rewritten first and encoded with the prefix the rewrite wants
    (query prefix for ReasonIR's style, document prefix for HyDE). ``k``, ``fetch_k``, ``where``, ``task`` and
    ``instruction`` can also be given per call: ``retriever.invoke(question, k=3, where={"book": "Chemistry 2e"})``.

    Example:
        .. code-block:: python

            from reasonir_rag import ChromaStore, ReasonIREncoder
            from langchain_reasonir import ReasonIRRetriever

            store = ChromaStore("openstax", encoder=ReasonIREncoder.from_pretrained(preset="minilm"))
            retriever = ReasonIRRetriever(store=store, k=5)
            docs = retriever.invoke("Why does ice float on water?")
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    store: Any
    """The core :class:`~reasonir_rag.index.store.ChromaStore` (its encoder encodes the queries)."""
    k: int = Field(default=4, ge=1, strict=True)
    """How many documents to return."""
    fetch_k: int | None = Field(default=None, ge=1, strict=True)
    """Candidates to rerank (None: the core's ``RERANK_CANDIDATES``, ReasonIR's 100); without a reranker only ``k``
    are fetched."""
    where: dict[str, Any] | None = None
    """Chroma metadata filter, e.g. ``{"book": "Chemistry 2e"}``."""
    task: str | None = None
    """BRIGHT task whose instruction prefixes the query (e.g. ``"biology"``)."""
    instruction: str | None = None
    """A custom query instruction (instead of ``task``)."""
    rewriter: ReasonIRQueryRewriter | None = None
    """Rewrites the question before retrieval (a core QueryRewriter is wrapped automatically)."""
    reranker: ReasonIRReranker | None = None
    """Reranks the candidates (a core QwenReranker is wrapped automatically; its ``top_n`` is replaced by ``k``)."""

    @field_validator("store", mode="before")
    @classmethod
    def _check_store(cls, value: Any) -> Any:
        needed = ("search", "encoder")
        if any(getattr(value, name, None) is None for name in needed):
            raise TypeError(f"store must be a reasonir_rag ChromaStore, got {type(value).__name__}")
        return value

    @field_validator("rewriter", mode="before")
    @classmethod
    def _wrap_rewriter(cls, value: Any) -> Any:
        if value is None or isinstance(value, ReasonIRQueryRewriter):
            return value
        return ReasonIRQueryRewriter(rewriter=value)

    @field_validator("reranker", mode="before")
    @classmethod
    def _wrap_reranker(cls, value: Any) -> Any:
        if value is None or isinstance(value, ReasonIRReranker):
            return value
        return ReasonIRReranker(reranker=value, top_n=None)

    # ------------------------------------------------------------------ BaseRetriever
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        opts = self._options(kwargs)
        text, kind = query, "query"
        if self.rewriter is not None:
            text = self.rewriter.invoke(query, config={"callbacks": run_manager.get_child()})
            kind = self.rewriter.prefix_kind
        docs = self._search(text, kind, opts)
        if self.reranker is not None:
            docs = self.reranker.rerank(docs, query, top_n=opts["k"], task=opts["task"])
        return docs[: opts["k"]]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        opts = self._options(kwargs)
        text, kind = query, "query"
        if self.rewriter is not None:
            text = await self.rewriter.ainvoke(query, config={"callbacks": run_manager.get_child()})
            kind = self.rewriter.prefix_kind
        docs = await asyncio.to_thread(self._search, text, kind, opts)
        if self.reranker is not None:
            docs = await asyncio.to_thread(self.reranker.rerank, docs, query, top_n=opts["k"], task=opts["task"])
        return docs[: opts["k"]]

    # ------------------------------------------------------------------ internals
    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(_CALL_OPTIONS) - _IGNORED)
        if unknown:
            raise TypeError(f"ReasonIRRetriever got unexpected argument(s) {unknown}; per call it takes "
                            f"{', '.join(_CALL_OPTIONS)}")
        opts = {name: kwargs.get(name, getattr(self, name)) for name in _CALL_OPTIONS}
        for name in ("k", "fetch_k"):
            value = opts[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if opts["where"] is not None and not isinstance(opts["where"], Mapping):
            raise TypeError(f"where must be a dict (a Chroma filter), got {type(opts['where']).__name__}")
        if "task" in kwargs and "instruction" not in kwargs:
            opts["instruction"] = None  # a per-call task replaces the instance's instruction, and vice versa
        elif "instruction" in kwargs and "task" not in kwargs:
            opts["task"] = None
        return opts

    def _search(self, text: str, kind: str, opts: dict[str, Any]) -> list[Document]:
        k = opts["k"]
        n = max(k, opts["fetch_k"] or RERANK_CANDIDATES) if self.reranker is not None else k
        hits = self.store.search(text, n, task=opts["task"], instruction=opts["instruction"], where=opts["where"],
                                 prefix_kind=kind)
        return [Document(id=h.id, page_content=h.text, metadata={**h.metadata, RETRIEVAL_SCORE_KEY: h.score})
                for h in hits]

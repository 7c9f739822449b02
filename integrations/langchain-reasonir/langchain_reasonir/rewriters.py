"""The core query rewriter as a LangChain Runnable (``str -> str``), composable as ``rewriter | retriever``.

The prompt, the LLM call, the token budget, caching and the failure policy are the core
:class:`~reasonir_rag.pipeline.rewriter.QueryRewriter`'s; this class adds callbacks, batching through the core's single
batched call, and async.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, field_validator
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.llm.adapter import FrameworkLLM
from reasonir_rag.pipeline.retriever import arewrite_queries
from reasonir_rag.pipeline.rewriter import QueryRewriter
from reasonir_rag.protocols import Rewriter
from reasonir_rag.types import PrefixKind, Rewrite

from langchain_reasonir.models import WHAT_TO_PASS, LangChainLLM, is_langchain_model

logger = logging.getLogger(__name__)


class RewrittenQuery(str):
    """A rewrite as a ``str`` (what LangChain passes on) that keeps which prefix it wants and the question."""

    prefix_kind: PrefixKind
    original: str

    def __new__(cls, text: str, prefix_kind: PrefixKind = "query", original: str = "") -> RewrittenQuery:
        made = super().__new__(cls, text)
        made.prefix_kind, made.original = prefix_kind, original or text
        return made

    @classmethod
    def of(cls, rewrite: Rewrite) -> RewrittenQuery:
        return cls(rewrite.text, rewrite.prefix_kind, rewrite.original)


def prefix_kind_of(text: Any) -> PrefixKind:
    """``"document"`` for a HyDE rewrite that came out of :class:`ReasonIRQueryRewriter`, else ``"query"``."""
    return "document" if getattr(text, "prefix_kind", "query") == "document" else "query"


def _valid(query: Any) -> bool:
    return isinstance(query, str) and bool(query.strip())


def _check_prefix_carrier(rewriter: ReasonIRQueryRewriter, other: Any) -> None:
    """A HyDE rewrite piped into a retriever that would encode it with the query prefix is refused."""
    if rewriter.prefix_kind != "document" or not isinstance(other, BaseRetriever):
        return
    from langchain_reasonir.embeddings import ReasonIREmbeddings
    from langchain_reasonir.retrievers import ReasonIRRetriever

    embeddings = getattr(getattr(other, "vectorstore", None), "embeddings", None)
    if isinstance(other, ReasonIRRetriever) or isinstance(embeddings, ReasonIREmbeddings):
        return
    raise TypeError(f"a HyDE rewriter writes a passage that must be encoded with the DOCUMENT prefix, and "
                    f"{type(other).__name__} would embed it as a query; pipe it into ReasonIRRetriever, a vector store "
                    "retriever over ReasonIREmbeddings, or give it to ReasonIRRetriever(rewriter=...)")


class ReasonIRQueryRewriter(RunnableSerializable[str, str]):
    """Rewrite a question into ReasonIR's long reasoning query (or a HyDE passage) before retrieval.

    ``rewriter`` is a :class:`~reasonir_rag.pipeline.rewriter.QueryRewriter`, any LangChain chat or completion
    model (``ChatOpenAI(...)``: its calls are child LLM runs with their token usage), or an LLM backend from
    :mod:`reasonir_rag.llm`; for a model, a ``QueryRewriter`` is built with ReasonIR's defaults.

    Example:
        .. code-block:: python

            from reasonir_rag.llm import OpenAICompatibleLLM
            from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRRetriever

            rewriter = ReasonIRQueryRewriter(rewriter=OpenAICompatibleLLM("qwen", base_url="http://127.0.0.1:8000/v1"))
            chain = rewriter | ReasonIRRetriever(store=store, k=5)

    The output is a :class:`RewrittenQuery`: a ``str`` that also says which prefix it wants (``prefix_kind``)
    and what the question was (``original``). A HyDE rewriter (``style="hyde"``) writes a passage that wants the
    DOCUMENT prefix, and it gets it whichever way it is composed: ``ReasonIRRetriever(rewriter=...)``,
    ``rewriter | ReasonIRRetriever(...)`` (which also reranks against the original question), or ``rewriter |
    vectorstore.as_retriever()`` over :class:`~langchain_reasonir.ReasonIREmbeddings` (its ``embed_query``
    encodes a document-kind rewrite with the document prefix). Piping a HyDE rewriter into any other retriever,
    which would embed the passage as a query, raises a TypeError when the chain is composed.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    rewriter: Rewriter
    """The core :class:`~reasonir_rag.pipeline.rewriter.QueryRewriter` (or another
    :class:`~reasonir_rag.protocols.Rewriter`)."""

    @field_validator("rewriter", mode="before")
    @classmethod
    def _core_rewriter(cls, value: Any) -> Any:
        if isinstance(value, ReasonIRQueryRewriter):
            return value.rewriter
        if callable(getattr(value, "rewrite_queries", None)):
            return value
        if is_langchain_model(value):
            return QueryRewriter(LangChainLLM(value))
        if callable(getattr(value, "generate", None)) and callable(getattr(value, "count_tokens", None)):
            return QueryRewriter(value)  # a core LLM backend
        raise TypeError(f"rewriter must be a reasonir_rag QueryRewriter or {WHAT_TO_PASS}; got {type(value).__name__}")

    def __or__(self, other: Any) -> Any:
        _check_prefix_carrier(self, other)
        return super().__or__(other)

    def pipe(self, *others: Any, name: str | None = None) -> Any:
        if others:
            _check_prefix_carrier(self, others[0])
        return super().pipe(*others, name=name)

    @property
    def prefix_kind(self) -> str:
        """``"query"`` (ReasonIR style: encode with the query prefix) or ``"document"`` (HyDE)."""
        return str(getattr(self.rewriter, "prefix_kind", "query"))

    # ------------------------------------------------------------------ Runnable
    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self._call_with_config(self._rewrite, input, config, run_type="chain")

    async def ainvoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return await self._acall_with_config(self._arewrite, input, config, run_type="chain")

    def batch(self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[str]:
        """All inputs in one batched core call (one run per input in the callbacks); with a LangChain model, one
        call per input, so that each LLM run is the child of its input's run."""
        if isinstance(self.rewriter.llm, FrameworkLLM):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

        def run(items: list[str]) -> list[Any]:
            return self._rewrite_many(items, return_exceptions)

        return self._batch_with_config(run, list(inputs), config, return_exceptions=return_exceptions,
                                       run_type="chain")

    async def abatch(self, inputs: list[str], config: RunnableConfig | list[RunnableConfig] | None = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[str]:
        if isinstance(self.rewriter.llm, FrameworkLLM):
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)

        async def run(items: list[str]) -> list[Any]:
            return await self._arewrite_many(items, return_exceptions)

        return await self._abatch_with_config(run, list(inputs), config, return_exceptions=return_exceptions,
                                              run_type="chain")

    # ------------------------------------------------------------------ internals
    def _rewrite(self, query: str) -> str:
        return RewrittenQuery.of(self.rewriter.rewrite_queries([query])[0])

    async def _arewrite(self, query: str) -> str:
        return RewrittenQuery.of((await arewrite_queries(self.rewriter, [query]))[0])

    def _rewrite_many(self, queries: list[str], return_exceptions: bool) -> list[Any]:
        """One core call for the batch; with ``return_exceptions`` a bad input fails alone, not the batch."""
        try:
            return [RewrittenQuery.of(r) for r in self.rewriter.rewrite_queries(queries)]
        except InvalidInputError:
            if not return_exceptions:
                raise
        return self._one_by_one(queries, self.rewriter.rewrite_queries([q for q in queries if _valid(q)]))

    async def _arewrite_many(self, queries: list[str], return_exceptions: bool) -> list[Any]:
        """:meth:`_rewrite_many`, awaiting the core rewriter."""
        try:
            return [RewrittenQuery.of(r) for r in await arewrite_queries(self.rewriter, queries)]
        except InvalidInputError:
            if not return_exceptions:
                raise
        return self._one_by_one(queries, await arewrite_queries(self.rewriter, [q for q in queries if _valid(q)]))

    def _one_by_one(self, queries: list[str], rewrites: list[Rewrite]) -> list[Any]:
        """The valid inputs' rewrites in their places, and the core's own error (it names what is wrong, before any
        LLM work) in each invalid input's."""
        done = iter(rewrites)
        out: list[Any] = []
        for q in queries:
            if _valid(q):
                out.append(RewrittenQuery.of(next(done)))
                continue
            try:  # the core rewriter refuses it before any LLM work
                out.append(RewrittenQuery.of(self.rewriter.rewrite_queries([q])[0]))
            except InvalidInputError as exc:
                out.append(exc)
        logger.warning("rewriting: %d of %d inputs were invalid and returned as exceptions",
                       sum(isinstance(o, Exception) for o in out), len(queries))
        return out

    def __repr__(self) -> str:
        return f"ReasonIRQueryRewriter({self.rewriter!r})"

"""A LangChain retriever over the core ChromaStore, with optional rewriting and reranking.

Rewrite -> search -> rerank is the core :class:`~reasonir_rag.pipeline.retriever.Retriever`; this class translates
documents and options, and reports the rewrite and rerank stages as child runs (``ReasonIRQueryRewriter``,
``ReasonIRReranker``) in callbacks and traces.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.pipeline.retriever import DEFAULT_K, Query, Retriever, SearchOptions, Stage
from reasonir_rag.protocols import SearchIndex
from reasonir_rag.types import ScoredDocument

from langchain_reasonir.document_compressors import RELEVANCE_SCORE_KEY, RETRIEVAL_SCORE_KEY, ReasonIRReranker
from langchain_reasonir.models import arun_as_child, run_as_child
from langchain_reasonir.rewriters import ReasonIRQueryRewriter, RewrittenQuery

logger = logging.getLogger(__name__)

_CALL_OPTIONS = ("k", "fetch_k", "where", "task", "instruction")
_IGNORED = frozenset({"verbose"})  # BaseRetriever.invoke reads it and passes it on


class ReasonIRRetriever(BaseRetriever):
    """Retrieve from a :class:`~reasonir_rag.index.store.ChromaStore` with ReasonIR's query prefix.

    Each document's ``metadata["retrieval_score"]`` is its cosine similarity (the field
    :class:`~langchain_reasonir.ReasonIRReranker` reads); ``id`` is the store's id. With a
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

    store: SearchIndex
    """The core :class:`~reasonir_rag.index.store.ChromaStore` (its encoder encodes the queries), or any
    :class:`~reasonir_rag.protocols.SearchIndex` such as the core's ``BM25Retriever``."""
    k: int = Field(default=DEFAULT_K, ge=1, strict=True)
    """How many documents to return (the core ``Retriever``'s default, 10)."""
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
        if not isinstance(value, SearchIndex):
            raise TypeError(f"store must be a reasonir_rag ChromaStore (or another SearchIndex), "
                            f"got {type(value).__name__}")
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
        questions, queries, options = self._request(query, kwargs)
        hits = self._pipeline().retrieve_many(questions, queries=queries, run=_ChildRuns(run_manager), **options)
        return [self._to_document(hit) for hit in hits[0]]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        """The core pipeline's async path: rewrite and rerank await their LLM, the search runs in a worker thread;
        the stages are child runs as on the sync path."""
        questions, queries, options = self._request(query, kwargs)
        hits = await self._pipeline().aretrieve_many(questions, queries=queries, run=_AsyncChildRuns(run_manager),
                                                     **options)
        return [self._to_document(hit) for hit in hits[0]]

    # ------------------------------------------------------------------ internals
    def _request(self, query: Any, kwargs: dict[str, Any]) -> tuple[list[str], list[Query] | None, dict[str, Any]]:
        """(questions, queries, options) for the core pipeline: a :class:`RewrittenQuery` piped in from
        ``ReasonIRQueryRewriter`` is searched with the prefix it wants (a HyDE passage: the document prefix) and
        reranked against its original question; anything else is the question itself."""
        options = self._options(kwargs)
        if isinstance(query, RewrittenQuery):
            return [query.original], [Query(str(query), query.prefix_kind)], options
        if not isinstance(query, str):
            raise InvalidInputError(f"ReasonIRRetriever takes one query string, got {type(query).__name__}")
        return [query], None, options

    def _pipeline(self) -> Retriever:
        return Retriever(self.store, rewriter=self.rewriter.rewriter if self.rewriter is not None else None,
                         reranker=self.reranker.reranker if self.reranker is not None else None, k=self.k,
                         fetch_k=self.fetch_k, task=self.task, instruction=self.instruction, where=self.where)

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(_CALL_OPTIONS) - _IGNORED)
        if unknown:
            raise TypeError(f"ReasonIRRetriever got unexpected argument(s) {unknown}; per call it takes "
                            f"{', '.join(_CALL_OPTIONS)}")
        return {name: kwargs[name] for name in _CALL_OPTIONS if name in kwargs}

    def _to_document(self, hit: ScoredDocument) -> Document:
        """A core hit as a LangChain document: ``retrieval_score`` the retrieval cosine, ``relevance_score`` the
        final score after reranking."""
        scores = {RETRIEVAL_SCORE_KEY: hit.score} if self.reranker is None else {
            RETRIEVAL_SCORE_KEY: hit.metadata["retrieval_score"], RELEVANCE_SCORE_KEY: hit.score}
        return Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, **scores})


# the core pipeline's LLM stages, as child runs named after the components a user configured
_RUN_NAMES = {"rewrite": "ReasonIRQueryRewriter", "rerank": "ReasonIRReranker"}


def _run_inputs(stage: Stage, items: list[Any]) -> Any:
    if stage == "rewrite":
        return items[0] if len(items) == 1 else items
    return {"query": items[0][0], "candidates": len(items[0][1])} if len(items) == 1 else {"queries": len(items)}


def _run_outputs(stage: Stage, results: list[Any]) -> Any:
    if stage == "rewrite":
        texts = [r.text for r in results]
        return texts[0] if len(texts) == 1 else texts
    return {"ids": [[d.id for d in docs] for docs in results]}


class _ChildRuns:
    """The core pipeline's rewrite and rerank stages as child chain runs of the retriever's run."""

    def __init__(self, run_manager: CallbackManagerForRetrieverRun):
        self.run_manager = run_manager

    def __call__(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
                 options: SearchOptions) -> list[Any]:
        name = _RUN_NAMES.get(stage)
        if name is None:
            return compute(items)
        run = self._start(name, _run_inputs(stage, items))
        try:
            results = run_as_child(run, compute, items)  # the stage's LLM calls: child runs of this one
        except BaseException as exc:
            self._finish(run, error=exc)
            raise
        self._finish(run, outputs=_run_outputs(stage, results))
        return results

    def _start(self, name: str, inputs: Any) -> Any:
        return self.run_manager.get_child().on_chain_start(None, inputs, name=name)

    def _finish(self, run: Any, *, outputs: Any = None, error: BaseException | None = None) -> None:
        if error is not None:
            run.on_chain_error(error)
        else:
            run.on_chain_end(outputs)


class _AsyncChildRuns:
    """:class:`_ChildRuns` for the async path (the core's ``AsyncStageRunner``)."""

    def __init__(self, run_manager: AsyncCallbackManagerForRetrieverRun):
        self.run_manager = run_manager

    async def __call__(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], Awaitable[list[Any]]],
                       options: SearchOptions) -> list[Any]:
        name = _RUN_NAMES.get(stage)
        if name is None:
            return await compute(items)
        run = await self.run_manager.get_child().on_chain_start(None, _run_inputs(stage, items), name=name)
        try:
            results = await arun_as_child(run, compute, items)
        except BaseException as exc:
            await run.on_chain_error(exc)
            raise
        await run.on_chain_end(_run_outputs(stage, results))
        return results

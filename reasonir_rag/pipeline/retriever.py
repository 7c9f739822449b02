"""Rewrite -> search -> rerank, composed once: the evaluator, the demo and both framework packages use this.

Three stages, each over a batch:

1. **rewrite** (with a rewriter): each question becomes a :class:`~reasonir_rag.types.Rewrite`, encoded with the
   prefix it wants (ReasonIR's long query: the query prefix; HyDE: the document prefix). Without a rewriter the
   question is the query.
2. **search**: one ``search_many`` per prefix kind; a :class:`Query` that already carries a vector (a framework
   computed it) is searched by that vector. Without a reranker ``k`` are fetched, with one ``fetch_k``
   (ReasonIR: 100).
3. **rerank** (with a reranker): the candidates are scored against the ORIGINAL question, the best ``k`` kept.

Callers wrap the stages with a :class:`StageRunner`: the evaluator journals each result, LangChain makes each a
child run, LlamaIndex sends its events. The default runs them as they are.

:meth:`Retriever.aretrieve_many` is the same composition (one generator, ``_stages``, drives both) on an event
loop: the rewrite and the rerank await their LLM, the search runs in a worker thread, an
:class:`AsyncStageRunner` wraps each stage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from reasonir_rag._common.steps import acall, adrive, drive
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.pipeline.reranker import RERANK_CANDIDATES
from reasonir_rag.protocols import Reranker, Rewriter, SearchIndex
from reasonir_rag.types import PrefixKind, Rewrite, ScoredDocument

logger = logging.getLogger(__name__)

Stage = Literal["rewrite", "search", "rerank"]
# passages returned per question unless a call says otherwise (the framework packages take it too)
DEFAULT_K = 10


@dataclass(frozen=True)
class Query:
    """What is searched for one question: a text with its prefix kind, or a vector computed elsewhere."""

    text: str
    prefix_kind: PrefixKind = "query"
    vector: Sequence[float] | None = None


@dataclass(frozen=True)
class SearchOptions:
    """Per-call settings of one retrieval (``None`` in a call takes the retriever's own)."""

    k: int
    fetch_k: int
    task: str | None = None
    instruction: str | None = None
    where: Mapping[str, Any] | None = field(default=None)


class StageRunner(Protocol):
    """Runs one stage's ``compute`` over ``items`` (and may journal, trace or time it); returns its results in
    order. ``options`` are the settings the results depend on (for journal keys)."""

    def __call__(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
                 options: SearchOptions) -> list[Any]: ...


class AsyncStageRunner(Protocol):
    """:class:`StageRunner` for :meth:`Retriever.aretrieve_many`: ``compute`` is a coroutine function."""

    async def __call__(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], Awaitable[list[Any]]],
                       options: SearchOptions) -> list[Any]: ...


def run_directly(stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
                 options: SearchOptions) -> list[Any]:
    """The default :class:`StageRunner`: no journal, no tracing."""
    return compute(items)


async def arun_directly(stage: Stage, items: list[Any], compute: Callable[[list[Any]], Awaitable[list[Any]]],
                        options: SearchOptions) -> list[Any]:
    """The default :class:`AsyncStageRunner`."""
    return await compute(items)


async def arewrite_queries(rewriter: Rewriter, queries: Sequence[str]) -> list[Rewrite]:
    """``rewriter.arewrite_queries(queries)`` awaited, or, for a rewriter without async methods (a user's own),
    its ``rewrite_queries`` in a worker thread: the async paths of the pipeline and both framework packages."""
    return list(await acall(rewriter, "rewrite_queries", queries))


async def arerank(reranker: Reranker, query: str, docs: Sequence[Any], *, top_n: int | None = None,
                  task: str | None = None) -> list[ScoredDocument]:
    """``reranker.arerank(...)`` awaited, or its ``rerank`` in a worker thread (see :func:`arewrite_queries`)."""
    return list(await acall(reranker, "rerank", query, docs, top_n=top_n, task=task))


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
    return value


class Retriever:
    """Questions to their best ``k`` passages through the optional rewriter and reranker (module docstring).

    ``fetch_k`` is how many candidates are searched: by default ``k`` without a reranker and
    :data:`~reasonir_rag.pipeline.reranker.RERANK_CANDIDATES` (ReasonIR's 100) with one. ``task`` /
    ``instruction`` choose the query instruction (a BRIGHT task's, or a custom one); ``where`` filters by metadata.
    """

    def __init__(self, index: SearchIndex, *, rewriter: Rewriter | None = None, reranker: Reranker | None = None,
                 k: int = DEFAULT_K, fetch_k: int | None = None, task: str | None = None,
                 instruction: str | None = None, where: Mapping[str, Any] | None = None):
        if not callable(getattr(index, "search_many", None)):
            raise InvalidInputError(f"index must have search_many() (a ChromaStore, BM25Retriever or another "
                                    f"SearchIndex), got {type(index).__name__}")
        if task is not None and instruction is not None:
            raise InvalidInputError("give task or instruction, not both")
        self.index, self.rewriter, self.reranker = index, rewriter, reranker
        self.k = _check_count("k", k)
        self.fetch_k = None if fetch_k is None else _check_count("fetch_k", fetch_k)
        self.task, self.instruction, self.where = task, instruction, where

    def __repr__(self) -> str:
        return (f"Retriever({self.index!r}, rewriter={self.rewriter!r}, reranker={self.reranker!r}, k={self.k}, "
                f"fetch_k={self.fetch_k})")

    # ------------------------------------------------------------------ the composition
    def options(self, *, k: int | None = None, fetch_k: int | None = None, task: str | None = None,
                instruction: str | None = None, where: Mapping[str, Any] | None = None) -> SearchOptions:
        """This retriever's settings with a call's own in their place (a call's ``task`` replaces the
        retriever's ``instruction`` and vice versa)."""
        k = self.k if k is None else _check_count("k", k)
        if fetch_k is None:
            fetch_k = self.fetch_k or (max(k, RERANK_CANDIDATES) if self.reranker is not None else k)
        fetch_k = max(k, _check_count("fetch_k", fetch_k))
        if task is not None and instruction is not None:
            raise InvalidInputError("give task or instruction, not both")
        if task is None and instruction is None:
            task, instruction = self.task, self.instruction
        if where is not None and not isinstance(where, Mapping):
            raise InvalidInputError(f"where must be a dict (a Chroma filter), got {type(where).__name__}")
        return SearchOptions(k, fetch_k, task, instruction, self.where if where is None else where)

    def retrieve(self, question: str, **kwargs: Any) -> list[ScoredDocument]:
        """:meth:`retrieve_many` for one question."""
        if not isinstance(question, str):
            raise InvalidInputError(f"retrieve() takes one query string, got {type(question).__name__}")
        return self.retrieve_many([question], **kwargs)[0]

    def retrieve_many(self, questions: Sequence[str], *, queries: Sequence[Query] | None = None,
                      run: StageRunner = run_directly, k: int | None = None, fetch_k: int | None = None,
                      task: str | None = None, instruction: str | None = None,
                      where: Mapping[str, Any] | None = None) -> list[list[ScoredDocument]]:
        """The best ``k`` passages for each question, best first.

        ``queries`` (one per question) replaces the rewrite stage: what to search was decided elsewhere (a
        framework's own query transform). ``run`` wraps each stage (see :class:`StageRunner`).
        """
        opts = self.options(k=k, fetch_k=fetch_k, task=task, instruction=instruction, where=where)
        computes: dict[Stage, Callable[[list[Any]], list[Any]]] = {
            "rewrite": lambda todo: self._rewriter().rewrite_queries(todo),
            "search": lambda todo: self.search(todo, opts),
            "rerank": lambda todo: self.rerank(todo, opts)}
        return drive(self._stages(questions, queries, opts),
                     lambda stage: run(stage.name, stage.items, computes[stage.name], opts))

    async def aretrieve(self, question: str, **kwargs: Any) -> list[ScoredDocument]:
        """:meth:`aretrieve_many` for one question."""
        if not isinstance(question, str):
            raise InvalidInputError(f"aretrieve() takes one query string, got {type(question).__name__}")
        return (await self.aretrieve_many([question], **kwargs))[0]

    async def aretrieve_many(self, questions: Sequence[str], *, queries: Sequence[Query] | None = None,
                             run: AsyncStageRunner = arun_directly, k: int | None = None, fetch_k: int | None = None,
                             task: str | None = None, instruction: str | None = None,
                             where: Mapping[str, Any] | None = None) -> list[list[ScoredDocument]]:
        """:meth:`retrieve_many` on an event loop: the rewrite and the rerank await their LLM (``arewrite_queries``,
        ``arerank``: no thread held with an async backend); the search (local encoding and Chroma) runs in a
        worker thread."""
        opts = self.options(k=k, fetch_k=fetch_k, task=task, instruction=instruction, where=where)
        computes: dict[Stage, Callable[[list[Any]], Awaitable[list[Any]]]] = {
            "rewrite": lambda todo: arewrite_queries(self._rewriter(), todo),
            "search": lambda todo: asyncio.to_thread(self.search, todo, opts),
            "rerank": lambda todo: self.arerank(todo, opts)}
        return await adrive(self._stages(questions, queries, opts),
                            lambda stage: run(stage.name, stage.items, computes[stage.name], opts))

    def _stages(self, questions: Sequence[str], queries: Sequence[Query] | None,
                opts: SearchOptions) -> Generator[_StageCall, Any, list[list[ScoredDocument]]]:
        """The composition, written once for both callers: yields each stage's work, returns the results."""
        if questions is None or isinstance(questions, str):
            raise InvalidInputError("retrieve_many() takes a list of question strings")
        questions = list(questions)
        if queries is None:
            if self.rewriter is None:
                queries = [Query(q) for q in questions]
            else:
                rewrites = yield _StageCall("rewrite", questions)
                queries = [Query(r.text, r.prefix_kind) for r in rewrites]
        elif len(queries) != len(questions):
            raise InvalidInputError(f"{len(queries)} queries for {len(questions)} questions")
        candidates = yield _StageCall("search", list(queries))
        if self.reranker is None:
            return [docs[: opts.k] for docs in candidates]
        return (yield _StageCall("rerank", list(zip(questions, candidates, strict=True))))

    def _rewriter(self) -> Rewriter:
        assert self.rewriter is not None  # the rewrite stage runs only with one
        return self.rewriter

    # ------------------------------------------------------------------ the stages
    def search(self, queries: Sequence[Query], options: SearchOptions) -> list[list[ScoredDocument]]:
        """``options.fetch_k`` candidates per query: one ``search_many`` per prefix kind, vectors one by one."""
        out: list[list[ScoredDocument]] = [[] for _ in queries]
        by_vector = [i for i, q in enumerate(queries) if q.vector is not None]
        if by_vector:
            search_by_vector = getattr(self.index, "search_by_vector", None)
            if search_by_vector is None:
                raise InvalidInputError(f"{type(self.index).__name__} cannot search by vector")
            for i in by_vector:
                out[i] = search_by_vector(queries[i].vector, options.fetch_k, where=options.where)
        kinds: tuple[PrefixKind, ...] = ("query", "document")
        for kind in kinds:
            rows = [i for i, q in enumerate(queries) if q.vector is None and q.prefix_kind == kind]
            if rows:
                found = self.index.search_many([queries[i].text for i in rows], options.fetch_k, task=options.task,
                                               instruction=options.instruction, where=options.where,
                                               prefix_kind=kind)
                for i, docs in zip(rows, found, strict=True):
                    out[i] = docs
        return out

    def rerank(self, pairs: Sequence[tuple[str, list[ScoredDocument]]],
               options: SearchOptions) -> list[list[ScoredDocument]]:
        """The best ``options.k`` of each question's candidates, scored against the question itself."""
        reranker = self.reranker
        if reranker is None:
            return [docs[: options.k] for _, docs in pairs]
        return [reranker.rerank(question, docs, top_n=options.k, task=options.task) if docs else []
                for question, docs in pairs]

    async def arerank(self, pairs: Sequence[tuple[str, list[ScoredDocument]]],
                      options: SearchOptions) -> list[list[ScoredDocument]]:
        """:meth:`rerank` with each question's candidates awaited together (the reranker's ``arerank``, or its
        ``rerank`` in a worker thread for a reranker without one)."""
        reranker = self.reranker
        if reranker is None:
            return [docs[: options.k] for _, docs in pairs]

        async def one(question: str, docs: list[ScoredDocument]) -> list[ScoredDocument]:
            return await arerank(reranker, question, docs, top_n=options.k, task=options.task) if docs else []

        return list(await asyncio.gather(*(one(q, docs) for q, docs in pairs)))


@dataclass(frozen=True)
class _StageCall:
    name: Stage
    items: list[Any]

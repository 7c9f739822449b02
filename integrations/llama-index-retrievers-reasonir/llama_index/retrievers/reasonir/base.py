"""A LlamaIndex retriever over a reasonir-rag :class:`~reasonir_rag.index.store.ChromaStore`.

Use it for collections built by reasonir-rag itself (``reasonir-rag index``, ``ChromaStore.add``), which carry
the encoder's fingerprint and are searched with the encoder they were built with. For an index built by
LlamaIndex (``VectorStoreIndex`` over ``ChromaVectorStore``) use ``index.as_retriever()`` with
:class:`~llama_index.embeddings.reasonir.ReasonIREmbedding` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.embeddings.reasonir.hyde import is_hyde_passage
from llama_index.postprocessor.reasonir_rerank import ReasonIRReranker
from llama_index.postprocessor.reasonir_rerank.events import rerank_events
from llama_index.postprocessor.reasonir_rerank.llms import LlamaIndexLLM, is_llama_index_llm
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.llm.adapter import rerank_layout
from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.pipeline.retriever import DEFAULT_K, Query, Retriever, SearchOptions, Stage
from reasonir_rag.pipeline.rewriter import QueryRewriter
from reasonir_rag.protocols import Rewriter, TokenizingEncoder
from reasonir_rag.types import ScoredDocument

from llama_index.retrievers.reasonir.events import embedding_events

logger = logging.getLogger(__name__)


def to_node(hit: ScoredDocument) -> NodeWithScore:
    """A core search hit as a LlamaIndex node (the store's id becomes the node id)."""
    return NodeWithScore(node=TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata)), score=hit.score)


class ReasonIRRetriever(BaseRetriever):
    """Top-``similarity_top_k`` passages from a :class:`~reasonir_rag.index.store.ChromaStore`, best first.

    Rewrite -> search -> rerank is the core :class:`~reasonir_rag.pipeline.retriever.Retriever`: with a
    ``rewriter`` (a core ``QueryRewriter``, or a LlamaIndex ``LLM`` that ReasonIR's rewriter then runs on) the
    question is rewritten first and encoded with the prefix the rewrite wants; with a ``reranker`` (a core
    ``QwenReranker``, a ``ReasonIRReranker``, or a LlamaIndex ``LLM``) ``fetch_k`` candidates (ReasonIR: 100) are
    reranked against the question, with LlamaIndex's rerank events. A :class:`~llama_index.core.schema.QueryBundle` that
    already carries an ``embedding`` (as :class:`~llama_index.retrievers.reasonir.ReasonIRQueryTransform` sets
    it) is searched by that vector, without rewriting; otherwise its ``embedding_strs`` are encoded with the query
    prefix of ``task`` / ``instruction`` (several strings are averaged, as LlamaIndex's vector retriever does).
    Scores are cosine similarities, or the reranker's final scores.
    """

    def __init__(
        self,
        store: ChromaStore,
        *,
        similarity_top_k: int = DEFAULT_K,
        task: str | None = None,
        instruction: str | None = None,
        where: Mapping[str, Any] | None = None,
        rewriter: Rewriter | Any = None,
        reranker: QwenReranker | Any = None,
        fetch_k: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(store, ChromaStore):
            raise TypeError(f"store must be a reasonir_rag ChromaStore, got {type(store).__name__}")
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int) or similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be an int >= 1, got {similarity_top_k!r}")
        if is_llama_index_llm(rewriter):  # LlamaIndex's own LLM: ReasonIR's rewriter on it, fitted to the encoder
            encoder = store.encoder if isinstance(store.encoder, TokenizingEncoder) else None
            rewriter = QueryRewriter(LlamaIndexLLM(rewriter), encoder=encoder, task=task, instruction=instruction)
        if rewriter is not None and not isinstance(rewriter, Rewriter):
            raise TypeError(f"rewriter must be a reasonir_rag QueryRewriter or a LlamaIndex LLM, "
                            f"got {type(rewriter).__name__}")
        if isinstance(reranker, ReasonIRReranker):
            reranker = reranker.reranker
        elif is_llama_index_llm(reranker):
            llm = LlamaIndexLLM(reranker)
            reranker = QwenReranker(llm, task=task, **rerank_layout(llm))
        if reranker is not None and not isinstance(reranker, QwenReranker):
            raise TypeError(f"reranker must be a reasonir_rag QwenReranker, a ReasonIRReranker or a LlamaIndex LLM, "
                            f"got {type(reranker).__name__}")
        query_prefix = getattr(store.encoder, "query_prefix", None)  # every ReasonIR encoder has one
        if query_prefix is not None:
            query_prefix(instruction=instruction, task=task)  # unknown task / both given: fail now
        self._store = store
        self._pipeline = Retriever(store, rewriter=rewriter, reranker=reranker, k=similarity_top_k,
                                   fetch_k=fetch_k, task=task, instruction=instruction,
                                   where=dict(where) if where else None)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def store(self) -> ChromaStore:
        return self._store

    @property
    def similarity_top_k(self) -> int:
        return self._pipeline.k

    @property
    def pipeline(self) -> Retriever:
        """The core retriever this class translates for."""
        return self._pipeline

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._pipeline.retrieve_many([query_bundle.query_str], queries=self.queries_for(query_bundle),
                                            run=self._stage)[0]
        return [to_node(hit) for hit in hits]

    def queries_for(self, query_bundle: QueryBundle) -> list[Query] | None:
        """What the core searches for ``query_bundle`` (None: the question itself, rewritten first with a rewriter).

        A bundle's ``embedding`` is searched as it is. Its ``custom_embedding_strs`` are searched instead of the
        question: each with the query prefix, except a passage LlamaIndex's ``HyDEQueryTransform`` wrote, which gets
        the DOCUMENT prefix (:mod:`llama_index.embeddings.reasonir.hyde`); several are encoded here (with the
        embedding events) and their vectors averaged, as LlamaIndex's vector retriever does.
        """
        question = query_bundle.query_str
        if query_bundle.embedding is not None:
            return [Query(question, vector=query_bundle.embedding)]
        texts = list(query_bundle.embedding_strs) or [question]  # "" -> the core's clear error
        queries = [Query(t, "document" if is_hyde_passage(t) else "query") for t in texts]
        if len(queries) == 1:
            return None if queries[0] == Query(question) else queries
        encoded = self.encode(queries, self._pipeline.options())
        return [Query(question, vector=np.mean([np.asarray(q.vector) for q in encoded], axis=0))]

    def encode(self, queries: list[Query], options: SearchOptions) -> list[Query]:
        """``queries`` with a vector each: the texts encoded with the store's encoder and the prefix each wants (one
        call per prefix kind), inside LlamaIndex's embedding events (``EmbeddingStartEvent`` /
        ``EmbeddingEndEvent`` with the texts as chunks, and the ``EMBEDDING`` callback)."""
        encoder, out = self._store.encoder, list(queries)
        for kind in ("query", "document"):
            rows = [i for i, q in enumerate(queries) if q.vector is None and q.prefix_kind == kind]
            if not rows:
                continue
            texts = [queries[i].text for i in rows]
            model = {"model_name": getattr(getattr(encoder, "config", None), "name", type(encoder).__name__),
                     "class_name": type(encoder).__name__, "prefix_kind": kind, "task": options.task,
                     "instruction": options.instruction}
            with embedding_events(self.callback_manager, model, texts) as finish:
                if kind == "document":
                    vectors = encoder.encode_documents(texts)
                else:
                    vectors = encoder.encode_queries(texts, task=options.task, instruction=options.instruction)
                finish(vectors)
            for i, vector in zip(rows, vectors, strict=True):
                out[i] = Query(queries[i].text, kind, vector=vector)
        return out

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The core pipeline's async path: the rewrite and the rerank await their LLM (an async one holds no
        thread), the encoding and Chroma run in a worker thread; the same events as :meth:`_retrieve`."""
        queries = await asyncio.to_thread(self.queries_for, query_bundle)
        hits = await self._pipeline.aretrieve_many([query_bundle.query_str], queries=queries, run=self._astage)
        return [to_node(hit) for hit in hits[0]]

    def _stage(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
               options: SearchOptions) -> list[Any]:
        """The search stage encodes here, with LlamaIndex's embedding events (then searches by vector), the rerank
        stage runs inside LlamaIndex's rerank events; the rewrite stage as it is."""
        if stage == "search":
            return compute(self.encode(items, options))
        if stage != "rerank":
            return compute(items)
        out = []
        for question, docs in items:
            with self._rerank_events(question, docs, options) as finish:
                out.append(finish(compute([(question, docs)])[0]))
        return out

    async def _astage(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], Awaitable[list[Any]]],
                      options: SearchOptions) -> list[Any]:
        """:meth:`_stage` for the async path (the questions' reranks awaited together)."""
        if stage == "search":
            return await compute(await asyncio.to_thread(self.encode, items, options))
        if stage != "rerank":
            return await compute(items)

        async def one(question: str, docs: list[ScoredDocument]) -> list[ScoredDocument]:
            with self._rerank_events(question, docs, options) as finish:
                return finish((await compute([(question, docs)]))[0])

        return list(await asyncio.gather(*(one(q, docs) for q, docs in items)))

    @contextmanager
    def _rerank_events(self, question: str, docs: list[ScoredDocument],
                       options: SearchOptions) -> Iterator[Callable[[list[ScoredDocument]], list[ScoredDocument]]]:
        """LlamaIndex's rerank events around one question's rerank; ``finish(ranked)`` closes them."""
        reranker = self._pipeline.reranker
        model = getattr(getattr(reranker, "llm", None), "model_name", type(reranker).__name__)
        with rerank_events(self.callback_manager, QueryBundle(question), [to_node(d) for d in docs], options.k,
                           model) as finish_nodes:

            def finish(ranked: list[ScoredDocument]) -> list[ScoredDocument]:
                finish_nodes([to_node(d) for d in ranked])
                return ranked

            yield finish

"""A LlamaIndex retriever over a reasonir-rag :class:`~reasonir_rag.index.store.ChromaStore`.

Use it for collections built by reasonir-rag itself (``reasonir-rag index``, ``ChromaStore.add``), which carry
the encoder's fingerprint and are searched with the encoder they were built with. For an index built by
LlamaIndex (``VectorStoreIndex`` over ``ChromaVectorStore``) use ``index.as_retriever()`` with
:class:`~llama_index.embeddings.reasonir.ReasonIREmbedding` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
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
        pipeline, question = self._pipeline, query_bundle.query_str
        queries: list[Query] | None = None
        if query_bundle.embedding is not None:
            queries = [Query(question, vector=query_bundle.embedding)]
        else:
            texts = list(query_bundle.embedding_strs) or [question]  # "" -> the core's clear error
            if len(texts) > 1:
                vectors = self._store.encoder.encode_queries(texts, task=pipeline.task,
                                                             instruction=pipeline.instruction)
                queries = [Query(question, vector=np.mean(vectors, axis=0))]
            elif texts[0] != question:
                queries = [Query(texts[0])]
        hits = pipeline.retrieve_many([question], queries=queries, run=self._stage)[0]
        return [to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """:meth:`_retrieve` in a worker thread: the event loop keeps serving while the model and Chroma run."""
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _stage(self, stage: Stage, items: list[Any], compute: Callable[[list[Any]], list[Any]],
               options: SearchOptions) -> list[Any]:
        """The rerank stage with LlamaIndex's rerank events; the others as they are."""
        if stage != "rerank":
            return compute(items)
        reranker = self._pipeline.reranker
        model = getattr(getattr(reranker, "llm", None), "model_name", type(reranker).__name__)
        out = []
        for question, docs in items:
            with rerank_events(self.callback_manager, QueryBundle(question), [to_node(d) for d in docs],
                               options.k, model) as finish:
                ranked = compute([(question, docs)])[0]
                finish([to_node(d) for d in ranked])
            out.append(ranked)
        return out

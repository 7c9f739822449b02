"""A LlamaIndex retriever over a reasonir-rag :class:`~reasonir_rag.index.store.ChromaStore`.

Use it for collections built by reasonir-rag itself (``reasonir-rag index``, ``ChromaStore.add``), which carry
the encoder's fingerprint and are searched with the encoder they were built with. For an index built by
LlamaIndex (``VectorStoreIndex`` over ``ChromaVectorStore``) use ``index.as_retriever()`` with
:class:`~llama_index.embeddings.reasonir.ReasonIREmbedding` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import ScoredDocument

logger = logging.getLogger(__name__)


def to_node(hit: ScoredDocument) -> NodeWithScore:
    """A core search hit as a LlamaIndex node (the store's id becomes the node id)."""
    return NodeWithScore(node=TextNode(id_=hit.id, text=hit.text, metadata=dict(hit.metadata)), score=hit.score)


class ReasonIRRetriever(BaseRetriever):
    """Top-``similarity_top_k`` passages from a :class:`~reasonir_rag.index.store.ChromaStore`, best first.

    A :class:`~llama_index.core.schema.QueryBundle` that already carries an ``embedding`` (as
    :class:`~llama_index.retrievers.reasonir.ReasonIRQueryTransform` sets it) is searched by that vector;
    otherwise its ``embedding_strs`` are encoded with the query prefix of ``task`` / ``instruction`` (several
    strings are averaged, as LlamaIndex's vector retriever does). Scores are cosine similarities.
    """

    def __init__(
        self,
        store: ChromaStore,
        *,
        similarity_top_k: int = 10,
        task: str | None = None,
        instruction: str | None = None,
        where: Mapping[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(store, ChromaStore):
            raise TypeError(f"store must be a reasonir_rag ChromaStore, got {type(store).__name__}")
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int) or similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be an int >= 1, got {similarity_top_k!r}")
        query_prefix = getattr(store.encoder, "query_prefix", None)  # every ReasonIR encoder has one
        if query_prefix is not None:
            query_prefix(instruction=instruction, task=task)  # unknown task / both given: fail now
        self._store = store
        self._similarity_top_k = similarity_top_k
        self._task = task
        self._instruction = instruction
        self._where = dict(where) if where else None
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def store(self) -> ChromaStore:
        return self._store

    @property
    def similarity_top_k(self) -> int:
        return self._similarity_top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        k, where = self._similarity_top_k, self._where
        if query_bundle.embedding is not None:
            hits = self._store.search_by_vector(query_bundle.embedding, k, where=where)
        else:
            texts = list(query_bundle.embedding_strs) or [query_bundle.query_str]  # "" -> the core's clear error
            if len(texts) == 1:
                hits = self._store.search(texts[0], k, task=self._task, instruction=self._instruction, where=where)
            else:
                vectors = self._store.encoder.encode_queries(texts, task=self._task, instruction=self._instruction)
                hits = self._store.search_by_vector(np.mean(vectors, axis=0), k, where=where)
        return [to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """:meth:`_retrieve` in a worker thread: the event loop keeps serving while the model and Chroma run."""
        return await asyncio.to_thread(self._retrieve, query_bundle)

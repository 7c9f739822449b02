"""ReasonIR's LLM reranker as a LangChain ``BaseDocumentCompressor`` (for ``ContextualCompressionRetriever``).

Prompts, scoring, truncation, the blend with the retriever score and the failure policy are the core
:class:`~reasonir_rag.pipeline.reranker.QwenReranker`'s; this class maps LangChain documents in and out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, field_validator
from reasonir_rag.llm.adapter import rerank_layout
from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.pipeline.retriever import arerank
from reasonir_rag.protocols import Reranker
from reasonir_rag.types import Document as CoreDocument
from reasonir_rag.types import ScoredDocument

from langchain_reasonir.models import WHAT_TO_PASS, LangChainLLM, arun_as_child, is_langchain_model, run_as_child

logger = logging.getLogger(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key holding the retriever's score (cosine), written by ReasonIRRetriever and the only one read here."""
RELEVANCE_SCORE_KEY = "relevance_score"
"""Metadata key of the final reranker score (LangChain's convention for rerankers)."""


class ReasonIRReranker(BaseDocumentCompressor):
    """Rerank documents with ReasonIR's pointwise LLM reranker and keep the ``top_n`` best.

    Returns copies whose metadata gains ``relevance_score`` (the final score) and ``rerank_score`` (0-5). The
    retrieval score is read from ``metadata["retrieval_score"]`` only, the field this package owns (written by
    :class:`~langchain_reasonir.ReasonIRRetriever`); a ``score`` or any other field is never read. The final
    score is a weighted sum, not a tie-break: ``alpha * rerank/5 + (1 - alpha) * retrieval score`` (alpha 0.5).
    Documents without a ``retrieval_score`` (e.g. from another vector store) are blended with the lowest
    retrieval score in the batch, and when no document has one the final score is ``rerank/5`` alone (0-1).

    ``reranker`` is a :class:`~reasonir_rag.pipeline.reranker.QwenReranker`, any LangChain chat or completion
    model, a core LLM backend, or a model spec for one. A LangChain model scores in one pass from its log-probs
    when it returns them (``ChatOpenAI(logprobs=True, top_logprobs=20)``; a chat model continues the answer
    prefix in the assistant turn, vLLM's ``continue_final_message``); otherwise it generates and the score is
    parsed (one warning says so). Each reranking is a child run named ``ReasonIRReranker`` and its LLM calls
    are child LLM runs with their token usage.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from langchain_reasonir import ReasonIRReranker

            compressor = ReasonIRReranker(reranker="Qwen/Qwen2.5-7B-Instruct", top_n=5)
            retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    reranker: Reranker
    """The core :class:`~reasonir_rag.pipeline.reranker.QwenReranker` (or another
    :class:`~reasonir_rag.protocols.Reranker`)."""
    top_n: int | None = Field(default=None, ge=1, strict=True)
    """How many documents to keep (None, the core reranker's default: all, reordered)."""
    task: str | None = None
    """BRIGHT task whose reranking prompt to use (None: the reranker's own)."""

    @field_validator("reranker", mode="before")
    @classmethod
    def _core_reranker(cls, value: Any) -> Any:
        if isinstance(value, ReasonIRReranker):
            return value.reranker
        if callable(getattr(value, "rerank", None)):
            return value
        if is_langchain_model(value):
            llm = LangChainLLM(value)
            return QwenReranker(llm, **rerank_layout(llm))
        if isinstance(value, str) or callable(getattr(value, "next_token_logprobs", None)):
            return QwenReranker(value)
        raise TypeError(f"reranker must be a reasonir_rag QwenReranker, a model spec string or {WHAT_TO_PASS}; "
                        f"got {type(value).__name__}")

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """The ``top_n`` most relevant documents, best first (copies with the scores in their metadata), as a
        child run of ``callbacks``' run."""
        manager = CallbackManager.configure(inheritable_callbacks=callbacks)
        run = manager.on_chain_start(None, _run_inputs(documents, query), name=type(self).__name__)
        try:
            ranked = run_as_child(run, self.rerank, documents, query, top_n=self.top_n)
        except BaseException as exc:
            run.on_chain_error(exc)
            raise
        run.on_chain_end(_run_outputs(ranked))
        return ranked

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Callbacks | None = None) -> Sequence[Document]:
        """:meth:`compress_documents` awaiting the core reranker (``arerank``: an async LLM holds no thread)."""
        manager = AsyncCallbackManager.configure(inheritable_callbacks=callbacks)
        run = await manager.on_chain_start(None, _run_inputs(documents, query), name=type(self).__name__)
        try:
            ranked = await arun_as_child(run, self.arerank, documents, query, top_n=self.top_n)
        except BaseException as exc:
            await run.on_chain_error(exc)
            raise
        await run.on_chain_end(_run_outputs(ranked))
        return ranked

    def rerank(self, documents: Sequence[Document], query: str, *, top_n: int | None = None,
               task: str | None = None) -> list[Document]:
        """Rerank with an explicit ``top_n`` (None: keep all); ``task`` overrides the instance's."""
        originals, items = _to_core_all(documents)
        ranked = self.reranker.rerank(query, items, top_n=top_n, task=task if task is not None else self.task)
        return _from_core(originals, ranked)

    async def arerank(self, documents: Sequence[Document], query: str, *, top_n: int | None = None,
                      task: str | None = None) -> list[Document]:
        """:meth:`rerank`, awaiting the core reranker."""
        originals, items = _to_core_all(documents)
        ranked = await arerank(self.reranker, query, items, top_n=top_n, task=task if task is not None else self.task)
        return _from_core(originals, ranked)


def _run_inputs(documents: Any, query: str) -> dict[str, Any]:
    return {"query": query, "documents": len(documents) if isinstance(documents, Sequence) else 0}


def _run_outputs(ranked: list[Document]) -> dict[str, Any]:
    return {"ids": [d.id for d in ranked], "scores": [d.metadata[RELEVANCE_SCORE_KEY] for d in ranked]}


def _to_core_all(documents: Any) -> tuple[list[Document | None], Any]:
    """The LangChain originals and the core documents (position as id); None or a single string pass as they are,
    for the core to name the problem."""
    if documents is None or isinstance(documents, (str, bytes)):
        return [], documents
    pairs = [_to_core(i, doc) for i, doc in enumerate(documents)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _from_core(originals: list[Document | None], ranked: list[ScoredDocument]) -> list[Document]:
    out = []
    for hit in ranked:
        original = originals[int(hit.id)]
        metadata = {**hit.metadata, RELEVANCE_SCORE_KEY: hit.score}
        out.append(original.model_copy(update={"metadata": metadata}))  # type: ignore[union-attr]
    return out


def _to_core(i: int, doc: Any) -> tuple[Document | None, Any]:
    """(the LangChain document to copy into the result, the core document with the input position as id)."""
    if isinstance(doc, Document):
        score = doc.metadata.get(RETRIEVAL_SCORE_KEY)
        if score is None:  # no retrieval score: the core's documented blend for such documents
            return doc, CoreDocument(str(i), doc.page_content, dict(doc.metadata))
        return doc, ScoredDocument(str(i), doc.page_content, dict(doc.metadata), score)  # junk: the core names it
    if isinstance(doc, str):
        return Document(page_content=doc), CoreDocument(str(i), doc, {})
    if isinstance(doc, ScoredDocument) and isinstance(doc.text, str):
        return Document(id=doc.id, page_content=doc.text), ScoredDocument(str(i), doc.text, dict(doc.metadata),
                                                                          doc.score)
    if isinstance(doc, CoreDocument) and isinstance(doc.text, str):
        return Document(id=doc.id, page_content=doc.text), CoreDocument(str(i), doc.text, dict(doc.metadata))
    return None, doc  # not a document: the core names it (with every other bad item) before any LLM work

"""ReasonIR's pointwise Qwen reranker as a LlamaIndex node postprocessor: ``ReasonIRReranker``, the name LangChain's
document compressor has (``QwenRerank``, its name before, is a deprecated subclass that warns when built).

Scoring (one forward pass per node for the 0-5 relevance digit, tie-broken with the retrieval score), prompts and
failure handling are the core's :class:`~reasonir_rag.pipeline.reranker.QwenReranker`; this class translates nodes and
emits LlamaIndex's rerank events (``ReRankStartEvent`` / ``ReRankEndEvent`` and the ``RERANKING`` callback).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from reasonir_rag.llm.adapter import rerank_layout
from reasonir_rag.pipeline.reranker import DEFAULT_RERANKER, QwenReranker
from reasonir_rag.types import Document, ScoredDocument

from llama_index.postprocessor.reasonir_rerank.events import rerank_events
from llama_index.postprocessor.reasonir_rerank.llms import as_core_llm

logger = logging.getLogger(__name__)

# what the reranker adds to node.metadata; kept out of the text the LLM and the embedder see
_NOTES = ("rerank_score", "rerank_error", "rerank_truncated", "rerank_digit_mass", "retrieval_score")


class ReasonIRReranker(BaseNodePostprocessor):
    """Rerank nodes with an instruction-tuned LLM's 0-5 relevance score (ReasonIR's reranker).

    ``llm``: any LlamaIndex ``LLM`` (``OpenAILike(..., logprobs=True)`` scores in one pass from its log-probs; an
    LLM without them generates and the score is parsed, with one warning; its calls show in LlamaIndex's
    instrumentation as LLM events), a reasonir-rag LLM backend (``OpenAICompatibleLLM`` for a vLLM server,
    ``TransformersLLM``) or a spec string (``"openai:MODEL"``, ``"hf:PATH"``; default Qwen2.5-7B-Instruct run
    locally); or pass a ready ``reranker=``.
    The node score becomes ``alpha * rerank/5 + (1 - alpha) * retrieval score``, a weighted sum (not a
    tie-break) with the node's own score; a node without a score is blended with the lowest score among the
    nodes, and when no node has one the score is ``rerank/5`` alone (0-1). ``node.metadata`` gains
    ``rerank_score`` (0-5; and ``rerank_error`` when a node could not be scored), plus ``retrieval_score``
    with ``keep_retrieval_score``. ``top_n=None`` keeps every node.
    """

    model: str = Field(description="The reranking LLM.")
    top_n: int | None = Field(default=None, description="Nodes to keep after reranking (None: all).", ge=1)
    keep_retrieval_score: bool = Field(default=False, description="Keep the retrieval score in node.metadata.")
    task: str | None = Field(default=None, description="BRIGHT task whose rerank prompt to use.")
    metadata_mode: MetadataMode = Field(default=MetadataMode.EMBED, description="What node text the LLM reads.")

    _reranker: QwenReranker = PrivateAttr()

    def __init__(
        self,
        llm: Any = None,
        *,
        reranker: QwenReranker | None = None,
        top_n: int | None = None,
        keep_retrieval_score: bool = False,
        task: str | None = None,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        callback_manager: CallbackManager | None = None,
        **reranker_kwargs: Any,
    ) -> None:
        if reranker is not None:
            if llm is not None or reranker_kwargs:
                raise ValueError("pass either reranker= or llm= with QwenReranker arguments, not both")
            if not isinstance(reranker, QwenReranker):
                raise TypeError(f"reranker must be a reasonir_rag QwenReranker, got {type(reranker).__name__}")
        else:
            core = as_core_llm(llm) if llm is not None else DEFAULT_RERANKER
            layout = rerank_layout(core, reranker_kwargs.pop("mode", "logits"))
            reranker = QwenReranker(core, task=task, **{**layout, **reranker_kwargs})
        super().__init__(model=reranker.llm.model_name, top_n=top_n, keep_retrieval_score=keep_retrieval_score,
                         task=task, metadata_mode=metadata_mode,
                         callback_manager=callback_manager or CallbackManager([]))
        self._reranker = reranker

    @classmethod
    def class_name(cls) -> str:
        return "ReasonIRReranker"

    @property
    def reranker(self) -> QwenReranker:
        return self._reranker

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, top_n = self._query(query_bundle), self._top_n(nodes)
        with rerank_events(self.callback_manager, query, nodes, top_n, self.model) as finish:
            if not nodes:
                return finish([])
            ranked = self._reranker.rerank(query.query_str, self._docs(nodes), top_n=top_n, task=self.task)
            return finish([self._translate(nodes[int(doc.id)], doc) for doc in ranked])

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """:meth:`_postprocess_nodes` awaiting the core reranker (``arerank``: an async LLM holds no thread)."""
        query, top_n = self._query(query_bundle), self._top_n(nodes)
        with rerank_events(self.callback_manager, query, nodes, top_n, self.model) as finish:
            if not nodes:
                return finish([])
            ranked = await self._reranker.arerank(query.query_str, self._docs(nodes), top_n=top_n, task=self.task)
            return finish([self._translate(nodes[int(doc.id)], doc) for doc in ranked])

    def _query(self, query_bundle: QueryBundle | None) -> QueryBundle:
        if query_bundle is None:
            raise ValueError("ReasonIRReranker needs the query: call postprocess_nodes(nodes, query_str=...) "
                             "or use it inside a query engine")
        return query_bundle

    def _top_n(self, nodes: list[NodeWithScore]) -> int:
        return self.top_n if self.top_n is not None else len(nodes)

    def _docs(self, nodes: list[NodeWithScore]) -> list[ScoredDocument | Document]:
        return [_as_core(i, n, n.node.get_content(metadata_mode=self.metadata_mode)) for i, n in enumerate(nodes)]

    def _translate(self, source: NodeWithScore, ranked: ScoredDocument) -> NodeWithScore:
        node = source.node
        notes = {k: v for k, v in ranked.metadata.items() if k in _NOTES and k != "retrieval_score"}
        if self.keep_retrieval_score:
            notes["retrieval_score"] = source.score
        node.metadata.update(notes)
        for keys in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
            keys.extend(k for k in notes if k not in keys)
        return NodeWithScore(node=node, score=ranked.score)


class QwenRerank(ReasonIRReranker):
    """Deprecated: :class:`ReasonIRReranker`'s name before (LangChain's reranker is ``ReasonIRReranker`` too). The
    same postprocessor; building one emits one ``DeprecationWarning`` that names the new name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("QwenRerank is deprecated: use ReasonIRReranker (from llama_index.postprocessor.reasonir_rerank "
                      "import ReasonIRReranker), the same postprocessor under the name LangChain's reranker has",
                      DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)


def _as_core(i: int, node: NodeWithScore, text: str) -> ScoredDocument | Document:
    """The node as the core reranker's input: a ScoredDocument with its score, a Document (no retrieval score) for a
    node without one; NaN or junk reach the core's clear error."""
    if node.score is None:
        return Document(str(i), text, {})
    try:
        return ScoredDocument(str(i), text, {}, float(node.score))  # numpy scalars too
    except (TypeError, ValueError):
        return ScoredDocument(str(i), text, {}, node.score)

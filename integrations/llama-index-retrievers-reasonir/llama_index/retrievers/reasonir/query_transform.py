"""Query rewriting as a LlamaIndex query transform, embedded with the prefix the rewrite was made for.

``style="reasonir"`` (ReasonIR's rewriter): the LLM reasons about the question and drafts an answer; that long
query is embedded with the QUERY prefix (and the task instruction), as ReasonIR was trained (quality keeps
rising with query length up to 2048 tokens).

``style="hyde"``: the LLM writes a hypothetical passage, embedded with the DOCUMENT prefix, like the passages in
the index. LlamaIndex's own ``HyDEQueryTransform`` returns the passage (and, by default, the question) as
``custom_embedding_strs``, which LlamaIndex's retrievers embed with ``get_query_embedding`` and average; these
packages recognise its passages and give them the document prefix there too
(:mod:`llama_index.embeddings.reasonir.hyde`).

Either way the transform computes the embedding itself and returns a ``QueryBundle`` that keeps the user's
question as ``query_str`` (what the reranker and the response synthesizer read) with the rewrite in
``custom_embedding_strs`` and its vector in ``embedding``, which ``VectorIndexRetriever`` and
:class:`~llama_index.retrievers.reasonir.ReasonIRRetriever` use as is.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from llama_index.core.indices.query.query_transform.base import BaseQueryTransform
from llama_index.core.prompts.mixin import PromptDictType
from llama_index.core.schema import QueryBundle
from llama_index.embeddings.reasonir import ReasonIREmbedding
from llama_index.postprocessor.reasonir_rerank.llms import as_core_llm
from reasonir_rag.encoding.encoder import ReasonIREncoder
from reasonir_rag.pipeline.rewriter import QueryRewriter

logger = logging.getLogger(__name__)


class ReasonIRQueryTransform(BaseQueryTransform):
    """Rewrite the question with the core :class:`~reasonir_rag.pipeline.rewriter.QueryRewriter` and embed the rewrite.

    ``embed_model`` must be the embedding the index is searched with (same encoder, same ``task``): the
    transform embeds with it, so the vector lands in the index's space with the right prefix.
    """

    def __init__(self, rewriter: QueryRewriter, embed_model: ReasonIREmbedding | ReasonIREncoder) -> None:
        if not isinstance(rewriter, QueryRewriter):
            raise TypeError(f"rewriter must be a reasonir_rag QueryRewriter, got {type(rewriter).__name__}; "
                            "use ReasonIRQueryTransform.from_llm(llm, embed_model) to build one")
        if isinstance(embed_model, ReasonIREncoder):
            embed_model = ReasonIREmbedding(encoder=embed_model, task=rewriter.task, instruction=rewriter.instruction)
        if not isinstance(embed_model, ReasonIREmbedding):
            raise TypeError("embed_model must be a ReasonIREmbedding or ReasonIREncoder, "
                            f"got {type(embed_model).__name__}")
        if rewriter.encoder is not None and rewriter.encoder is not embed_model.encoder:
            logger.warning("the rewriter measures its budget with another encoder than the embed model's; "
                           "the rewrite may be cut by the encoder instead")
        elif (rewriter.task, rewriter.instruction) != (embed_model.task, embed_model.instruction):
            logger.info("the rewriter's budget uses task=%r, the embed model task=%r", rewriter.task, embed_model.task)
        super().__init__()
        self._rewriter = rewriter
        self._embed_model = embed_model

    @classmethod
    def from_llm(
        cls,
        llm: Any,
        embed_model: ReasonIREmbedding,
        *,
        style: Literal["reasonir", "hyde"] = "reasonir",
        **rewriter_kwargs: Any,
    ) -> ReasonIRQueryTransform:
        """A transform whose rewriter fits its output to ``embed_model``'s encoder and task.

        ``llm`` is any LlamaIndex ``LLM`` (None: ``Settings.llm``, as LlamaIndex's own transforms do; its calls
        show in LlamaIndex's instrumentation) or a reasonir-rag LLM backend (``OpenAICompatibleLLM``,
        ``TransformersLLM``); ``rewriter_kwargs`` go to :class:`~reasonir_rag.pipeline.rewriter.QueryRewriter`
        (``max_tokens``, ``keep_original``, ``cache``...).
        """
        core = as_core_llm(llm, default_settings=True)
        if isinstance(core, str):
            raise TypeError("the query transform takes an LLM object, not a spec string: a LlamaIndex LLM or "
                            f"reasonir_rag.llm.load_llm({core!r})")
        rewriter = QueryRewriter(core, style=style, encoder=embed_model.encoder, task=embed_model.task,
                                 instruction=embed_model.instruction, **rewriter_kwargs)
        return cls(rewriter, embed_model)

    @property
    def rewriter(self) -> QueryRewriter:
        return self._rewriter

    @property
    def embed_model(self) -> ReasonIREmbedding:
        return self._embed_model

    def _get_prompts(self) -> PromptDictType:
        """The rewriter's prompts are the core's (ReasonIR's own), not LlamaIndex templates."""
        return {}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        if prompts:
            raise ValueError("ReasonIRQueryTransform uses the core rewriter's prompts; configure QueryRewriter")

    def _run(self, query_bundle: QueryBundle, metadata: dict) -> QueryBundle:
        rewrite = self._rewriter.rewrite_query(query_bundle.query_str)
        if rewrite.prefix_kind == "query":  # also a failed rewrite: it falls back to the question
            embedding = self._embed_model.get_query_embedding(rewrite.text)
        else:
            embedding = self._embed_model.get_text_embedding(rewrite.text)
        logger.debug("rewrote %r into %d characters (%s prefix%s)", query_bundle.query_str[:60], len(rewrite.text),
                     rewrite.prefix_kind, ", fell back to the question" if rewrite.error else "")
        return QueryBundle(query_str=query_bundle.query_str, custom_embedding_strs=[rewrite.text], embedding=embedding)

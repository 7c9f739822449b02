"""LlamaIndex's own LLM in the retriever package: OpenAILike on the real vLLM server (SmolLM2) as the query
transform's rewriter and as the retriever's rewriter and reranker, with its calls in LlamaIndex's instrumentation (LLM
events with token counts, inside the rerank events)."""

from __future__ import annotations

import numpy as np
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from reasonir_rag.index.store import ChromaStore
from tests.llamaindex_fixtures import GRAM_QUESTION, openai_like

from llama_index.retrievers.reasonir import ReasonIRQueryTransform, ReasonIRRetriever


def test_query_transform_rewrites_with_openai_like_and_reports_it(served_llm, tiny_biology, events):
    transform = ReasonIRQueryTransform.from_llm(openai_like(served_llm, is_chat_model=True), tiny_biology,
                                                max_tokens=16)
    bundle = transform.run(GRAM_QUESTION)
    (rewrite,) = bundle.custom_embedding_strs
    assert rewrite.startswith(GRAM_QUESTION + "\n\n") and len(rewrite) > len(GRAM_QUESTION) + 5
    (start,) = events.of(LLMChatStartEvent)
    assert "Instructions:" in start.messages[-1].content  # ReasonIR's prompt went to LlamaIndex's LLM
    (end,) = events.of(LLMChatEndEvent)
    assert 0 < end.response.additional_kwargs["completion_tokens"] <= 16


def test_the_retriever_takes_llamaindex_llms_for_rewriting_and_reranking(served_llm, minilm_encoder, openstax_modules,
                                                                         tmp_path, events):
    store = ChromaStore("li-own-llms", encoder=minilm_encoder, path=tmp_path)
    store.add([r["text"] for r in openstax_modules], ids=[r["id"] for r in openstax_modules])
    retriever = ReasonIRRetriever(store, similarity_top_k=2, fetch_k=3,
                                  rewriter=openai_like(served_llm, is_chat_model=True),
                                  reranker=openai_like(served_llm, is_chat_model=True, logprobs=True, top_logprobs=20))
    retriever.pipeline.rewriter.max_tokens = 16  # type: ignore[union-attr]
    nodes = retriever.retrieve(GRAM_QUESTION)
    assert len(nodes) == 2 and all("rerank_score" in n.node.metadata for n in nodes)
    kinds = [type(e) for e in events.events if type(e) in (ReRankStartEvent, ReRankEndEvent, LLMChatStartEvent)]
    assert kinds == [LLMChatStartEvent, ReRankStartEvent, *[LLMChatStartEvent] * 3, ReRankEndEvent]


def test_llamaindex_hyde_on_openai_like_reaches_the_encoder_with_the_document_prefix(served_llm, tiny_encoder,
                                                                                      openstax_modules, tmp_path,
                                                                                      events):
    """LlamaIndex's own HyDEQueryTransform, its passage written by OpenAILike (SmolLM2 on the server), composed
    with ReasonIRRetriever in a TransformQueryEngine: the passage is encoded with ReasonIR's document prefix."""
    from llama_index.core import get_response_synthesizer
    from llama_index.core.indices.query.query_transform.base import HyDEQueryTransform
    from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
    from llama_index.core.query_engine import RetrieverQueryEngine, TransformQueryEngine
    from llama_index.core.schema import QueryBundle

    store = ChromaStore("li-hyde-llm", encoder=tiny_encoder, path=tmp_path)
    store.add([r["text"] for r in openstax_modules[:8]], ids=[r["id"] for r in openstax_modules[:8]])
    llm = openai_like(served_llm, is_chat_model=True, max_tokens=24, temperature=0.0)
    engine = TransformQueryEngine(
        RetrieverQueryEngine(retriever=ReasonIRRetriever(store, similarity_top_k=3),
                             response_synthesizer=get_response_synthesizer(llm=llm)),
        query_transform=HyDEQueryTransform(llm=llm, include_original=False))
    nodes = engine.retrieve(QueryBundle(GRAM_QUESTION))
    (start,), (end,) = events.of(EmbeddingStartEvent), events.of(EmbeddingEndEvent)
    (passage,) = end.chunks
    assert start.model_dict["prefix_kind"] == "document" and passage.strip() and passage != GRAM_QUESTION
    np.testing.assert_allclose(end.embeddings[0], tiny_encoder.encode_documents([passage])[0], atol=1e-5)
    assert [n.node.node_id for n in nodes] == [h.id for h in store.search_many([passage], 3,
                                                                                prefix_kind="document")[0]]
    assert len(events.of(LLMChatStartEvent)) == 1  # the passage came from the LLM

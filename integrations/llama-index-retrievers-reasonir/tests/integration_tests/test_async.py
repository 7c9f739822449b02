"""The async paths await LlamaIndex's own async LLM calls: ``aretrieve`` (rewrite and rerank through
``OpenAILike.achat`` on the real vLLM server, SmolLM2) and the postprocessor's ``apostprocess_nodes``. The LLM's sync
``chat`` is made to fail, so a pass cannot come from the sync path in a thread; the events are the sync path's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.instrumentation.events.embedding import EmbeddingStartEvent
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.llms.openai_like import OpenAILike
from llama_index.postprocessor.reasonir_rerank import ReasonIRReranker
from reasonir_rag.index.store import ChromaStore
from tests.llamaindex_fixtures import GRAM_QUESTION, openai_like

from llama_index.retrievers.reasonir import ReasonIRRetriever


@pytest.fixture
def async_only(monkeypatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async path called OpenAILike's sync chat")

    monkeypatch.setattr(OpenAILike, "chat", refuse)


def test_aretrieve_awaits_openai_like_and_sends_the_sync_paths_events(served_llm, minilm_encoder, openstax_modules,
                                                                      tmp_path, events, async_only):
    store = ChromaStore("li-async", encoder=minilm_encoder, path=tmp_path)
    store.add([r["text"] for r in openstax_modules], ids=[r["id"] for r in openstax_modules])
    retriever = ReasonIRRetriever(store, similarity_top_k=2, fetch_k=3,
                                  rewriter=openai_like(served_llm, is_chat_model=True),
                                  reranker=openai_like(served_llm, is_chat_model=True, logprobs=True, top_logprobs=20))
    retriever.pipeline.rewriter.max_tokens = 16  # type: ignore[union-attr]
    nodes = asyncio.run(retriever.aretrieve(GRAM_QUESTION))
    assert len(nodes) == 2 and all(0 <= n.node.metadata["rerank_score"] <= 5 for n in nodes)
    watched = (ReRankStartEvent, ReRankEndEvent, LLMChatStartEvent, EmbeddingStartEvent)
    kinds = [type(e) for e in events.events if type(e) in watched]
    assert kinds == [LLMChatStartEvent, EmbeddingStartEvent, ReRankStartEvent, *[LLMChatStartEvent] * 3,
                     ReRankEndEvent]


def test_apostprocess_nodes_awaits_openai_like(served_llm, events, async_only):
    texts = ["Gram-positive bacteria keep the crystal violet stain in their thick peptidoglycan wall.",
             "The mitochondrion makes ATP."]
    reranker = ReasonIRReranker(llm=openai_like(served_llm, is_chat_model=True, logprobs=True, top_logprobs=20),
                                top_n=2)
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.5) for t in texts]
    ranked = asyncio.run(reranker.apostprocess_nodes(nodes, query_str=GRAM_QUESTION))
    assert ranked[0].node.get_content() == texts[0] and len(ranked) == 2
    assert [type(e) for e in events.events if type(e) in (ReRankStartEvent, ReRankEndEvent)] == [
        ReRankStartEvent, ReRankEndEvent]
    assert len(events.of(LLMChatStartEvent)) == 2

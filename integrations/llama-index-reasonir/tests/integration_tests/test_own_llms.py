"""LlamaIndex's own LLM in every LLM component: OpenAILike on the real vLLM server (SmolLM2) as the reranker and the
query transform's rewriter, the one-pass scores from its log-probs equal to the core client's on the same pairs, and
its calls in LlamaIndex's instrumentation (LLM events with token counts, inside the rerank events)."""

from __future__ import annotations

import pytest
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.llms.openai_like import OpenAILike
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.reranker import QwenReranker

from llama_index.postprocessor.reasonir_rerank import QwenRerank
from llama_index.retrievers.reasonir import ReasonIRQueryTransform, ReasonIRRetriever

from ..helpers import GRAM_QUESTION

TEXTS = [
    "Gram staining uses crystal violet, iodine, alcohol decolorization and safranin to tell the cell walls apart.",
    "Homeostasis keeps the body's internal conditions within a narrow range.",
    "A vector has a magnitude and a direction.",
]


def _like(served_llm, **kwargs) -> OpenAILike:
    return OpenAILike(model=served_llm.model, api_base=served_llm.base_url, api_key="EMPTY", context_window=2048,
                      timeout=120, max_retries=0, **kwargs)


def _nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=str(i), text=t), score=0.5) for i, t in enumerate(TEXTS)]


def test_openai_like_chat_logprobs_give_the_core_clients_scores(served_llm, events):
    core = QwenReranker(OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, max_retries=1),
                        template="chat")
    rerank = QwenRerank(_like(served_llm, is_chat_model=True, logprobs=True, top_logprobs=20), top_n=2)
    assert (rerank.reranker.mode, rerank.reranker.template) == ("logits", "chat")
    expected = core.score(GRAM_QUESTION, TEXTS)
    nodes = rerank.postprocess_nodes(_nodes(), query_str=GRAM_QUESTION)
    got = [n.node.metadata["rerank_score"] for n in nodes]
    assert got == pytest.approx(sorted(expected, reverse=True)[:2], abs=1e-4)
    # three LLM calls, each inside the rerank events, each with its token counts
    kinds = [type(e) for e in events.events if type(e) in (ReRankStartEvent, ReRankEndEvent, LLMChatStartEvent)]
    assert kinds == [ReRankStartEvent, LLMChatStartEvent, LLMChatStartEvent, LLMChatStartEvent, ReRankEndEvent]
    ends = events.of(LLMChatEndEvent)
    assert len(ends) == 3 and all(e.response.additional_kwargs["prompt_tokens"] > 50 for e in ends)


def test_openai_like_completion_logprobs_give_the_core_clients_scores(served_llm, events):
    core = QwenReranker(OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, max_retries=1))
    rerank = QwenRerank(_like(served_llm, is_chat_model=False, logprobs=True, top_logprobs=20))
    assert (rerank.reranker.mode, rerank.reranker.template) == ("logits", "raw")
    assert rerank.reranker.score(GRAM_QUESTION, TEXTS) == pytest.approx(core.score(GRAM_QUESTION, TEXTS), abs=1e-4)
    assert len(events.of(LLMCompletionStartEvent)) == 3


def test_query_transform_rewrites_with_openai_like_and_reports_it(served_llm, tiny_biology, events):
    transform = ReasonIRQueryTransform.from_llm(_like(served_llm, is_chat_model=True), tiny_biology, max_tokens=16)
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
    retriever = ReasonIRRetriever(store, similarity_top_k=2, fetch_k=3, rewriter=_like(served_llm, is_chat_model=True),
                                  reranker=_like(served_llm, is_chat_model=True, logprobs=True, top_logprobs=20))
    retriever.pipeline.rewriter.max_tokens = 16  # type: ignore[union-attr]
    nodes = retriever.retrieve(GRAM_QUESTION)
    assert len(nodes) == 2 and all("rerank_score" in n.node.metadata for n in nodes)
    kinds = [type(e) for e in events.events if type(e) in (ReRankStartEvent, ReRankEndEvent, LLMChatStartEvent)]
    assert kinds == [LLMChatStartEvent, ReRankStartEvent, *[LLMChatStartEvent] * 3, ReRankEndEvent]

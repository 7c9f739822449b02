"""LlamaIndex's own LLM as the reranker: OpenAILike on the real vLLM server (SmolLM2), the one-pass scores from its
log-probs equal to the core client's on the same pairs, and its calls in LlamaIndex's instrumentation (LLM events
with token counts, inside the rerank events)."""

from __future__ import annotations

import pytest
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent, LLMCompletionStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, TextNode
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.reranker import QwenReranker
from tests.llamaindex_fixtures import GRAM_QUESTION, openai_like

from llama_index.postprocessor.reasonir_rerank import ReasonIRReranker

TEXTS = [
    "Gram staining uses crystal violet, iodine, alcohol decolorization and safranin to tell the cell walls apart.",
    "Homeostasis keeps the body's internal conditions within a narrow range.",
    "A vector has a magnitude and a direction.",
]


def _nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=str(i), text=t), score=0.5) for i, t in enumerate(TEXTS)]


def test_openai_like_chat_logprobs_give_the_core_clients_scores(served_llm, events):
    core = QwenReranker(OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, max_retries=1),
                        template="chat")
    rerank = ReasonIRReranker(openai_like(served_llm, is_chat_model=True, logprobs=True, top_logprobs=20), top_n=2)
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
    rerank = ReasonIRReranker(openai_like(served_llm, is_chat_model=False, logprobs=True, top_logprobs=20))
    assert (rerank.reranker.mode, rerank.reranker.template) == ("logits", "raw")
    assert rerank.reranker.score(GRAM_QUESTION, TEXTS) == pytest.approx(core.score(GRAM_QUESTION, TEXTS), abs=1e-4)
    assert len(events.of(LLMCompletionStartEvent)) == 3

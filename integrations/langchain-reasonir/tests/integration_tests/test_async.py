"""The async paths (``ainvoke``, ``abatch``, ``acompress_documents``) await the model's own async API: LangChain's
``ChatOpenAI.agenerate`` or the core client's ``AsyncOpenAI``, on the real vLLM server (SmolLM2). The sync entry
points are made to fail, so a pass cannot come from running the sync path in a thread; the stages and their LLM
calls nest as child runs as on the sync path."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_openai import ChatOpenAI
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.rewriter import QueryRewriter

from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRReranker, ReasonIRRetriever

from ..helpers import RunRecorder

# langchain-openai caches one async HTTP client per base URL and process; it belongs to the loop that first used it
pytestmark = pytest.mark.asyncio(loop_scope="session")

QUERY = "How does the speed of sound in air depend on the temperature?"


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an async path called a sync model method")


@pytest.fixture
def async_only(monkeypatch) -> None:
    """ChatOpenAI and the core client answer only through their async methods."""
    monkeypatch.setattr(ChatOpenAI, "_generate", _refuse)
    monkeypatch.setattr(OpenAICompatibleLLM, "generate", _refuse)
    monkeypatch.setattr(OpenAICompatibleLLM, "next_token_logprobs", _refuse)


def _chat(served_llm, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model=served_llm.model, base_url=served_llm.base_url, api_key="EMPTY", max_retries=0,
                      timeout=120, **kwargs)


async def test_aretrieve_awaits_chat_openai_and_nests_the_stages(served_llm, minilm_store, async_only):
    retriever = ReasonIRRetriever(store=minilm_store, k=2, fetch_k=3, rewriter=_chat(served_llm),
                                  reranker=_chat(served_llm, logprobs=True, top_logprobs=20))
    retriever.rewriter.rewriter.max_tokens = 16  # type: ignore[union-attr]
    rec = RunRecorder()
    docs = await retriever.ainvoke(QUERY, config={"callbacks": [rec]})
    assert len(docs) == 2 and all("relevance_score" in d.metadata for d in docs)
    parents = [rec.parent_name(e) for e in rec.of("chat_model_start")]
    assert parents.count("ReasonIRQueryRewriter") == 1 and parents.count("ReasonIRReranker") == 3
    retriever_run = rec.first("retriever_start")
    assert {rec.parent_name(rec.first("chain_start", n)) for n in ("ReasonIRQueryRewriter", "ReasonIRReranker")} \
        == {retriever_run["name"]}


async def test_abatch_rewrites_through_the_core_async_client(served_llm, async_only):
    llm = OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url)
    rewriter = ReasonIRQueryRewriter(rewriter=QueryRewriter(llm, max_tokens=12))
    rec = RunRecorder()
    out = await rewriter.abatch([QUERY, "Why is the sky blue?", "  "], config={"callbacks": [rec]},
                                return_exceptions=True)
    assert out[0].startswith(QUERY + "\n\n") and out[1].startswith("Why is the sky blue?\n\n")
    assert isinstance(out[2], ValueError) and "empty or whitespace" in str(out[2])
    assert len(rec.of("chain_start")) == 3  # one run per input, as LangChain's batch makes them


async def test_ainvoke_and_acompress_with_chat_openai(served_llm, async_only):
    rewriter = ReasonIRQueryRewriter(rewriter=_chat(served_llm))
    rewriter.rewriter.max_tokens = 12  # type: ignore[attr-defined]
    rewritten = await rewriter.ainvoke(QUERY)
    assert rewritten.startswith(QUERY + "\n\n") and len(rewritten) > len(QUERY) + 5
    texts = ["The speed of sound in air rises with temperature.", "Isotopes differ in their neutrons."]
    ranked = await ReasonIRReranker(reranker=_chat(served_llm, logprobs=True, top_logprobs=20)).acompress_documents(
        [Document(page_content=t) for t in texts], QUERY)
    assert ranked[0].page_content == texts[0]
    assert all(0 < d.metadata["rerank_score"] <= 5 for d in ranked)

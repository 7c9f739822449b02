"""LangChain's own models in every LLM component: ChatOpenAI / OpenAI on the real vLLM server (SmolLM2) as the
rewriter and the reranker, their calls as child LLM runs with token usage, and the reranker's one-pass scores read
from their log-probs equal to the core client's on the same pairs."""

from __future__ import annotations

import logging

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_openai import ChatOpenAI, OpenAI
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.reranker import QwenReranker

from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRReranker, ReasonIRRetriever
from langchain_reasonir.models import LangChainLLM

from ..helpers import RunRecorder

QUERY = "How does the speed of sound in air depend on the temperature?"
TEXTS = [
    "The speed of sound in air rises with temperature: about 331 m/s at 0 C plus 0.6 m/s per degree.",
    "Isotopes of an element differ in their number of neutrons.",
    "Sound travels faster in warm air than in cold air.",
]


def _chat(served_llm, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model=served_llm.model, base_url=served_llm.base_url, api_key="EMPTY", max_retries=0,
                      timeout=120, **kwargs)


class _Fixed(BaseRetriever):
    """Another store's retriever: plain documents, no retrieval score."""

    def _get_relevant_documents(self, query, *, run_manager):
        return [Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)]


def test_chat_openai_logprobs_give_the_core_clients_scores(served_llm):
    core = QwenReranker(OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, max_retries=1),
                        template="chat")
    ours = ReasonIRReranker(reranker=_chat(served_llm, logprobs=True, top_logprobs=20))
    assert isinstance(ours.reranker, QwenReranker) and ours.reranker.mode == "logits"
    assert ours.reranker.template == "chat"  # the answer prefix is continued in the assistant turn
    expected = core.score(QUERY, TEXTS)
    got = ours.reranker.score(QUERY, TEXTS)
    assert got == pytest.approx(expected, abs=1e-4)
    assert len(set(round(s, 3) for s in got)) > 1  # real, differing scores


def test_completion_model_logprobs_give_the_core_clients_scores(served_llm):
    core = QwenReranker(OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, max_retries=1))
    llm = OpenAI(model=served_llm.model, base_url=served_llm.base_url, api_key="EMPTY", max_retries=0,
                 logprobs=20, timeout=120)
    ours = ReasonIRReranker(reranker=llm)
    assert (ours.reranker.mode, ours.reranker.template) == ("logits", "raw")
    assert ours.reranker.score(QUERY, TEXTS) == pytest.approx(core.score(QUERY, TEXTS), abs=1e-4)


def test_without_logprobs_the_reranker_generates_and_says_so_once(served_llm, caplog):
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.llm.adapter"):
        reranker = ReasonIRReranker(reranker=_chat(served_llm), top_n=2)
    warnings = [r for r in caplog.records if "returns no log-probs" in r.getMessage()]
    assert len(warnings) == 1 and reranker.reranker.mode == "generate"
    out = reranker.compress_documents([Document(page_content=t) for t in TEXTS], QUERY)
    assert len(out) == 2 and all("rerank_output" in d.metadata for d in out)  # the generated answers


def test_rewriter_calls_are_child_llm_runs_with_token_usage(served_llm):
    rewriter = ReasonIRQueryRewriter(rewriter=_chat(served_llm))
    rewriter.rewriter.max_tokens = 16
    rec = RunRecorder()
    out = rewriter.invoke(QUERY, config={"callbacks": [rec], "run_name": "rewrite"})
    assert out.startswith(QUERY + "\n\n") and len(out) > len(QUERY) + 5
    start = rec.first("chat_model_start")
    assert rec.parent_name(start) == "rewrite"
    (_system, user), = start["payload"]
    assert "Instructions:" in user.content  # ReasonIR's prompt went to the framework's model
    end = next(e for e in rec.of("llm_end") if e["run_id"] == start["run_id"])
    usage = end["payload"].generations[0][0].message.usage_metadata
    assert usage["input_tokens"] > 20 and 0 < usage["output_tokens"] <= 16


def test_retriever_stages_nest_their_llm_runs(served_llm, minilm_store):
    retriever = ReasonIRRetriever(store=minilm_store, k=2, fetch_k=3, rewriter=_chat(served_llm),
                                  reranker=_chat(served_llm, logprobs=True, top_logprobs=20))
    retriever.rewriter.rewriter.max_tokens = 16  # type: ignore[union-attr]
    rec = RunRecorder()
    docs = retriever.invoke(QUERY, config={"callbacks": [rec]})
    assert len(docs) == 2 and all("relevance_score" in d.metadata for d in docs)
    parents = [rec.parent_name(e) for e in rec.of("chat_model_start")]
    assert parents.count("ReasonIRQueryRewriter") == 1 and parents.count("ReasonIRReranker") == 3


@pytest.mark.asyncio
async def test_contextual_compression_makes_reranking_a_child_run(served_llm):
    compressor = ReasonIRReranker(reranker=_chat(served_llm, logprobs=True, top_logprobs=20), top_n=2)
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=_Fixed())
    rec = RunRecorder()
    docs = await retriever.ainvoke(QUERY, config={"callbacks": [rec]})
    assert [d.page_content for d in docs] != [] and len(docs) == 2
    rerank = rec.first("chain_start", "ReasonIRReranker")
    assert rec.parent_name(rerank) is not None  # under the compression retriever's run
    llm_runs = rec.of("chat_model_start")
    assert len(llm_runs) == 3 and {e["parent"] for e in llm_runs} == {rerank["run_id"]}
    assert rec.end_of(rerank)["payload"]["ids"] == [d.id for d in docs]


def test_a_wrong_model_type_is_refused_with_what_to_pass():
    with pytest.raises(TypeError, match="LangChain chat or completion model"):
        LangChainLLM(object())
    with pytest.raises(TypeError, match=r"QwenReranker, a model spec string or a LangChain chat"):
        ReasonIRReranker(reranker=3.5)

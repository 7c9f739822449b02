"""An LCEL RAG chain end to end: rewriter | retriever | prompt | ChatOpenAI | parser, where the chat model and the
rewriter talk to the real local vLLM server (SmolLM2-135M-Instruct) and retrieval is MiniLM over OpenStax."""

from __future__ import annotations

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_openai import ChatOpenAI
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.pipeline.rewriter import QueryRewriter

from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRRetriever

from ..helpers import RunRecorder

QUESTION = "How does the speed of sound in air depend on the temperature?"
PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer the question in one or two sentences, using the context."),
    ("human", "Context:\n{context}\n\nQuestion: {question}"),
])


def _format(docs) -> str:
    return "\n\n".join(d.page_content for d in docs)


@pytest.fixture(scope="module")
def served(served_llm, smollm2_dir):
    llm = OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, tokenizer=str(smollm2_dir))
    chat = ChatOpenAI(model=served_llm.model, base_url=served_llm.base_url, api_key="EMPTY", temperature=0,
                      max_tokens=48, max_retries=0)
    return llm, chat


def _chain(rewriter, retriever, chat):
    context = rewriter | retriever | RunnableLambda(_format)
    return {"context": context, "question": RunnablePassthrough()} | PROMPT | chat | StrOutputParser()


def _rewriter(llm, cache) -> ReasonIRQueryRewriter:
    return ReasonIRQueryRewriter(rewriter=QueryRewriter(llm, max_tokens=32, cache=cache))


def test_lcel_rag_chain_over_vllm(served, minilm_store, rewrite_cache):
    llm, chat = served
    rewriter = _rewriter(llm, rewrite_cache)
    chain = _chain(rewriter, ReasonIRRetriever(store=minilm_store, k=3), chat)
    rec = RunRecorder()
    answer = chain.invoke(QUESTION, config={"callbacks": [rec]})

    assert isinstance(answer, str) and answer.strip()
    query = rec.first("retriever_start")["payload"]
    assert query.startswith(QUESTION + "\n\n") and len(query) > len(QUESTION) + 20  # SmolLM2's rewrite was used
    docs = rec.end_of(rec.first("retriever_start"))["payload"]
    assert len(docs) == 3 and docs[0].metadata["section"] == "Speed of Sound"
    (messages,) = rec.first("chat_model_start")["payload"]
    human = messages[-1].content
    assert QUESTION in human and all(d.page_content in human for d in docs)


@pytest.mark.asyncio
async def test_async_rag_chain_with_reranking_over_vllm(served, minilm_store, rewrite_cache):
    llm, chat = served
    rewriter = _rewriter(llm, rewrite_cache)  # the sync test's rewrite, from the cache
    retriever = ReasonIRRetriever(store=minilm_store, k=2, fetch_k=4, reranker=QwenReranker(llm))
    rec = RunRecorder()
    answer = await _chain(rewriter, retriever, chat).ainvoke(QUESTION, config={"callbacks": [rec]})

    assert isinstance(answer, str) and answer.strip()
    start = rec.first("retriever_start")
    docs = rec.end_of(start)["payload"]
    candidates = {h.id for h in minilm_store.search(start["payload"], 4)}
    assert len(docs) == 2 and {d.id for d in docs} <= candidates
    for d in docs:
        meta = d.metadata
        assert "rerank_error" not in meta and 0.0 <= meta["rerank_score"] <= 5.0
        assert meta["relevance_score"] == pytest.approx(0.5 * meta["rerank_score"] / 5 + 0.5 * meta["retrieval_score"])

"""The async paths: ``QueryRewriter.arewrite_queries``, ``QwenReranker.arerank`` and ``Retriever.aretrieve_many``
await the LLM's own async calls (``OpenAICompatibleLLM`` on ``AsyncOpenAI``) and give what the sync paths give.

Against the test suite's vLLM server (SmolLM2) with the LLM's sync methods made to fail, so a pass cannot come
from running them in a thread. A user's own rewriter and reranker without async methods still work (their sync
methods run in a worker thread).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reasonir_rag import ChromaStore
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.pipeline.retriever import Retriever
from reasonir_rag.pipeline.rewriter import QueryRewriter
from reasonir_rag.types import Document
from tests.llm.helpers import SERVED_NAME
from tests.pipeline.test_retriever import PASSAGES, TemplateRewriter, WordReranker

QUESTION = "Why does ice float on liquid water?"


def _no_sync_calls(llm: OpenAICompatibleLLM) -> OpenAICompatibleLLM:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the async path called the LLM's sync method")

    llm.generate = refuse  # type: ignore[method-assign]
    llm.next_token_logprobs = refuse  # type: ignore[method-assign]
    return llm


@pytest.fixture(scope="module")
def store(minilm_encoder, tmp_path_factory) -> ChromaStore:
    store = ChromaStore("asyncpaths", encoder=minilm_encoder, path=tmp_path_factory.mktemp("chroma"))
    store.add([Document(i, t) for i, t in PASSAGES.items()])
    return store


def _served(vllm_server, smollm2_dir) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(SERVED_NAME, base_url=vllm_server.base_url, tokenizer=str(smollm2_dir),
                               max_concurrency=4)


def test_rewrite_and_rerank_await_asyncopenai_and_match_the_sync_path(vllm_server, smollm2_dir):
    sync = _served(vllm_server, smollm2_dir)
    rewriter = QueryRewriter(sync, max_tokens=24)
    reranker = QwenReranker(sync)
    want_rewrite = rewriter.rewrite_queries([QUESTION])
    want_ranked = reranker.rerank(QUESTION, list(PASSAGES.values()))

    only_async = _no_sync_calls(_served(vllm_server, smollm2_dir))
    got_rewrite = asyncio.run(QueryRewriter(only_async, max_tokens=24).arewrite_queries([QUESTION]))
    got_ranked = asyncio.run(QwenReranker(only_async).arerank(QUESTION, list(PASSAGES.values())))
    assert got_rewrite == want_rewrite and got_rewrite[0].generated
    assert [d.text for d in got_ranked] == [d.text for d in want_ranked]
    for got, want in zip(got_ranked, want_ranked, strict=True):
        assert got.metadata["rerank_score"] == pytest.approx(want.metadata["rerank_score"], abs=1e-3)
    assert only_async._exact is True  # the async probe found the exact digit log-probs, as the sync one does


def test_aretrieve_many_runs_the_three_stages_through_an_async_stage_runner(vllm_server, smollm2_dir, store):
    llm = _no_sync_calls(_served(vllm_server, smollm2_dir))
    retriever = Retriever(store, rewriter=QueryRewriter(llm, max_tokens=16), reranker=QwenReranker(llm), k=2)
    seen: list[tuple[str, int]] = []

    async def journal(stage, items, compute, options):
        results = await compute(items)
        seen.append((stage, len(items)))
        return results

    questions = [QUESTION, "How do plants make sugar from light?"]
    got = asyncio.run(retriever.aretrieve_many(questions, run=journal))
    assert seen == [("rewrite", 2), ("search", 2), ("rerank", 2)]
    assert all(len(hits) == 2 and "rerank_score" in hits[0].metadata for hits in got)
    assert got[0][0].id == "ice" and got[1][0].id == "photo"


def test_a_users_own_stages_without_async_methods_run_in_a_worker_thread(store):
    rewriter, reranker = TemplateRewriter("{} (rewritten)"), WordReranker("orbit")
    retriever = Retriever(store, rewriter=rewriter, reranker=reranker, k=2)
    want = retriever.retrieve_many(["how do plants make sugar?"])
    got = asyncio.run(retriever.aretrieve_many(["how do plants make sugar?"]))
    assert got == want and got[0][0].id == "orbit"
    assert rewriter.seen == [["how do plants make sugar?"]] * 2 and len(reranker.calls) == 2

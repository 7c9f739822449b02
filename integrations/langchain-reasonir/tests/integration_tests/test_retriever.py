"""ReasonIRRetriever with rewriting (SmolLM2 in-process): the rewrite (query and HyDE prefixes) as a child run and
what gets searched, composition, and async with a reranker. The rest is in unit_tests/test_retriever.py."""

from __future__ import annotations

import pytest
from reasonir_rag.pipeline.rewriter import QueryRewriter

from langchain_reasonir import ReasonIRQueryRewriter, ReasonIRRetriever

from ..helpers import RunRecorder

Q = "How do cells make their energy?"  # as in unit_tests/test_retriever.py


def _ids_scores(docs):
    return [(d.id, round(d.metadata["retrieval_score"], 5)) for d in docs]


def test_rewriter_is_a_child_run_and_its_text_is_what_gets_searched(tiny_store, smollm2_rewriter):
    retriever = ReasonIRRetriever(store=tiny_store, k=3, rewriter=smollm2_rewriter)
    assert isinstance(retriever.rewriter, ReasonIRQueryRewriter)  # the core rewriter was wrapped
    rec = RunRecorder()
    docs = retriever.invoke(Q, config={"callbacks": [rec]})
    outer = rec.first("retriever_start", "ReasonIRRetriever")
    inner = rec.first("chain_start", "ReasonIRQueryRewriter")
    assert inner["parent"] == outer["run_id"] and inner["payload"] == Q
    rewritten = rec.end_of(inner)["payload"]
    assert rewritten.startswith(Q + "\n\n") and len(rewritten) > len(Q) + 5  # keep_original + SmolLM2's text
    assert _ids_scores(docs) == [(h.id, round(h.score, 5)) for h in tiny_store.search(rewritten, 3)]


def test_hyde_rewrite_is_encoded_with_the_document_prefix(tiny_store, smollm2_local, rewrite_cache):
    hyde = QueryRewriter(smollm2_local, style="hyde", max_tokens=16, keep_original=False, cache=rewrite_cache)
    retriever = ReasonIRRetriever(store=tiny_store, k=4, rewriter=hyde)
    rec = RunRecorder()
    docs = retriever.invoke(Q, config={"callbacks": [rec]})
    passage = rec.end_of(rec.first("chain_start", "ReasonIRQueryRewriter"))["payload"]
    as_document = tiny_store.search_by_vector(tiny_store.encoder.encode_documents([passage])[0], 4)
    assert _ids_scores(docs) == [(h.id, round(h.score, 5)) for h in as_document]
    assert _ids_scores(docs) != [(h.id, round(h.score, 5)) for h in tiny_store.search(passage, 4)]


def test_rewriter_pipes_into_the_retriever(tiny_store, smollm2_rewriter):
    rewriter = ReasonIRQueryRewriter(rewriter=smollm2_rewriter)
    retriever = ReasonIRRetriever(store=tiny_store, k=2)
    chain = rewriter | retriever
    assert _ids_scores(chain.invoke(Q)) == _ids_scores(retriever.invoke(rewriter.invoke(Q)))


@pytest.mark.asyncio
async def test_async_matches_sync_and_nests_the_rewriter(tiny_store, smollm2_rewriter, tiny_qwen_reranker):
    retriever = ReasonIRRetriever(store=tiny_store, k=2, fetch_k=5, reranker=tiny_qwen_reranker,
                                  rewriter=smollm2_rewriter)
    sync = retriever.invoke(Q)
    events = [e async for e in retriever.astream_events(Q, version="v2")]
    outer = next(e for e in events if e["event"] == "on_retriever_start")
    inner = next(e for e in events if e["event"] == "on_chain_start" and e["name"] == "ReasonIRQueryRewriter")
    assert outer["run_id"] in inner["parent_ids"]
    got = next(e for e in events if e["event"] == "on_retriever_end")["data"]["output"]
    assert [(d.id, round(d.metadata["relevance_score"], 5)) for d in got] == \
        [(d.id, round(d.metadata["relevance_score"], 5)) for d in sync]
    batch = await retriever.abatch([Q, "why does ice float?"])
    assert [d.id for d in batch[0]] == [d.id for d in sync] and len(batch[1]) == 2

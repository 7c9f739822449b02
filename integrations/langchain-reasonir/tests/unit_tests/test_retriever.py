"""ReasonIRRetriever over the real ChromaStore: the store's hits as Documents, k / where / task per call and in the
constructor, reranking (tiny Qwen2). Rewriting (SmolLM2) is in integration_tests/test_retriever.py."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from langchain_reasonir import ReasonIRRetriever

Q = "How do cells make their energy?"


def _ids_scores(docs):
    return [(d.id, round(d.metadata["retrieval_score"], 5)) for d in docs]


def test_results_are_the_stores_hits_as_documents(tiny_store):
    docs = ReasonIRRetriever(store=tiny_store, k=3).invoke(Q)
    hits = tiny_store.search(Q, 3)
    assert all(isinstance(d, Document) for d in docs)
    assert _ids_scores(docs) == [(h.id, round(h.score, 5)) for h in hits]
    assert [d.page_content for d in docs] == [h.text for h in hits]
    assert all(d.metadata["topic"] == h.metadata["topic"] for d, h in zip(docs, hits, strict=True))
    scores = [d.metadata["retrieval_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_k_where_task_and_instruction_in_constructor_and_per_call(tiny_store):
    physics = ReasonIRRetriever(store=tiny_store, k=5, where={"topic": "physics"})
    assert [d.metadata["topic"] for d in physics.invoke(Q)] == ["physics"] * 3
    chemistry = physics.invoke(Q, where={"topic": "chemistry"}, k=1)
    assert len(chemistry) == 1 and chemistry[0].metadata["topic"] == "chemistry"

    plain = ReasonIRRetriever(store=tiny_store, k=8)
    per_call = plain.invoke(Q, task="biology")
    assert _ids_scores(per_call) == [(h.id, round(h.score, 5)) for h in tiny_store.search(Q, 8, task="biology")]
    assert _ids_scores(per_call) != _ids_scores(plain.invoke(Q))
    biology = ReasonIRRetriever(store=tiny_store, k=8, task="biology")
    assert _ids_scores(biology.invoke(Q)) == _ids_scores(per_call)
    custom = biology.invoke(Q, instruction="Find passages about cells")  # replaces the instance's task
    expected = tiny_store.search(Q, 8, instruction="Find passages about cells")
    assert _ids_scores(custom) == [(h.id, round(h.score, 5)) for h in expected]


def test_reranker_reorders_the_fetched_candidates(tiny_store, tiny_qwen_reranker):
    retriever = ReasonIRRetriever(store=tiny_store, k=2, fetch_k=6, reranker=tiny_qwen_reranker)
    docs = retriever.invoke(Q)
    candidates = {h.id: h.score for h in tiny_store.search(Q, 6)}
    assert len(docs) == 2 and all(d.id in candidates for d in docs)
    for d in docs:
        meta = d.metadata
        assert meta["retrieval_score"] == pytest.approx(candidates[d.id]) and "score" not in meta
        assert meta["relevance_score"] == pytest.approx(0.5 * meta["rerank_score"] / 5 + 0.5 * meta["retrieval_score"])
    assert docs[0].metadata["relevance_score"] >= docs[1].metadata["relevance_score"]
    # the full reranked order of the 6 candidates starts with these two
    full = ReasonIRRetriever(store=tiny_store, k=6, fetch_k=6, reranker=tiny_qwen_reranker).invoke(Q)
    assert [d.id for d in full[:2]] == [d.id for d in docs]

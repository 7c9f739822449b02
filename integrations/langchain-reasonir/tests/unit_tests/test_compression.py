"""ReasonIRReranker as a document compressor, inside langchain-classic's ContextualCompressionRetriever."""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document

from langchain_reasonir import ReasonIRReranker, ReasonIRRetriever

Q = "How do cells make their energy?"


def test_contextual_compression_keeps_top_n_scored_copies(tiny_store, tiny_qwen_reranker):
    base = ReasonIRRetriever(store=tiny_store, k=5)
    candidates = {d.id: d for d in base.invoke(Q)}
    retriever = ContextualCompressionRetriever(
        base_compressor=ReasonIRReranker(reranker=tiny_qwen_reranker, top_n=2), base_retriever=base)
    docs = retriever.invoke(Q)
    assert len(docs) == 2 and all(d.id in candidates for d in docs)
    for d in docs:
        original = candidates[d.id]
        assert d.page_content == original.page_content and d.metadata["topic"] == original.metadata["topic"]
        assert d.metadata["retrieval_score"] == original.metadata["retrieval_score"]
        assert 0.0 <= d.metadata["rerank_score"] <= 5.0
        assert d.metadata["relevance_score"] == pytest.approx(0.5 * d.metadata["rerank_score"] / 5
                                                              + 0.5 * d.metadata["retrieval_score"])
    assert docs[0].metadata["relevance_score"] >= docs[1].metadata["relevance_score"]


@pytest.mark.asyncio
async def test_compress_returns_copies_and_async_agrees(tiny_qwen_reranker):
    docs = [Document(page_content="Mitochondria make ATP.", metadata={"retrieval_score": 0.9, "src": "a"}, id="a"),
            Document(page_content="The piano has 88 keys.", metadata={"src": "b"}, id="b"),
            Document(page_content="Ribosomes build proteins.", metadata={"score": "high"}, id="c")]
    compressor = ReasonIRReranker(reranker=tiny_qwen_reranker, top_n=None)
    out = compressor.compress_documents(docs, Q)
    assert sorted(d.id for d in out) == ["a", "b", "c"]
    assert all("relevance_score" not in d.metadata for d in docs)  # inputs untouched
    by_id = {d.id: d.metadata for d in out}
    assert by_id["a"]["retrieval_score"] == 0.9 and by_id["a"]["src"] == "a"
    assert by_id["b"]["retrieval_score"] is None and by_id["c"]["retrieval_score"] is None  # "score" is not read
    assert by_id["c"]["score"] == "high"
    expected = tiny_qwen_reranker.score(Q, [d.page_content for d in docs])
    assert [by_id[k]["rerank_score"] for k in "abc"] == pytest.approx(expected, abs=1e-5)
    for k, rerank in zip("bc", expected[1:], strict=True):  # without a score: the lowest one given (0.9)
        assert by_id[k]["relevance_score"] == pytest.approx(0.5 * rerank / 5 + 0.5 * 0.9)
    again = await compressor.acompress_documents(docs, Q)
    assert [(d.id, round(d.metadata["relevance_score"], 5)) for d in again] == \
        [(d.id, round(d.metadata["relevance_score"], 5)) for d in out]
    assert [d.id for d in ReasonIRReranker(reranker=tiny_qwen_reranker, top_n=1).compress_documents(docs, Q)] == \
        [out[0].id]


def test_an_arbitrary_score_field_is_never_the_retrieval_score(tiny_qwen_reranker):
    """An off-topic document rated ``score: 9`` by its source does not outrank on that rating; documents from a
    store that gives no retrieval score are ranked by the LLM alone, over the whole 0-1 range."""
    docs = [Document(page_content="The piano has 88 keys.", metadata={"score": 9}),
            Document(page_content="Mitochondria make ATP through respiration.")]
    out = ReasonIRReranker(reranker=tiny_qwen_reranker).compress_documents(docs, Q)
    raw = tiny_qwen_reranker.score(Q, [d.page_content for d in docs])
    assert sorted(d.metadata["relevance_score"] for d in out) == pytest.approx(sorted(r / 5 for r in raw))


def test_reranker_task_reaches_the_core_prompt(tiny_qwen_reranker):
    docs = [Document(page_content="x + 1 = 2, so x = 1.")]
    general = ReasonIRReranker(reranker=tiny_qwen_reranker).compress_documents(docs, "Solve x + 1 = 2")
    math = ReasonIRReranker(reranker=tiny_qwen_reranker, task="aops").compress_documents(docs, "Solve x + 1 = 2")
    expected = tiny_qwen_reranker.score("Solve x + 1 = 2", [docs[0].page_content], task="aops")[0]
    assert math[0].metadata["rerank_score"] == pytest.approx(expected, abs=1e-5)
    assert math[0].metadata["rerank_score"] != pytest.approx(general[0].metadata["rerank_score"], abs=1e-6)

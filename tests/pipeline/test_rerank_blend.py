"""The reranker's blend: a weighted sum with the retrieval score the reranker is GIVEN (a ScoredDocument's score),
never read from metadata; documents without one take the lowest given score, or the rerank score alone."""

from __future__ import annotations

import pytest

from reasonir_rag.pipeline.reranker import QwenReranker
from reasonir_rag.types import Document, ScoredDocument

QUERY = "How do cells make ATP?"
TEXTS = ["Mitochondria make ATP through respiration.", "Sound is faster in warm air.", "Ice floats on water."]


@pytest.fixture(scope="module")
def reranker(tiny_qwen_llm):
    return QwenReranker(tiny_qwen_llm)


def test_the_final_score_is_a_weighted_sum_and_metadata_score_is_not_read(reranker):
    raw = dict(zip(TEXTS, reranker.score(QUERY, TEXTS), strict=True))
    docs = [ScoredDocument(str(i), t, {"score": 9.0}, 0.2 * i) for i, t in enumerate(TEXTS)]
    for d in reranker.rerank(QUERY, docs):
        assert d.metadata["retrieval_score"] == pytest.approx(0.2 * int(d.id))  # not metadata["score"] = 9
        assert d.score == pytest.approx(0.5 * raw[d.text] / 5 + 0.5 * 0.2 * int(d.id))


def test_without_any_retrieval_score_the_rerank_score_alone_spans_zero_to_one(reranker):
    raw = dict(zip(TEXTS, reranker.score(QUERY, TEXTS), strict=True))
    out = reranker.rerank(QUERY, [Document(str(i), t) for i, t in enumerate(TEXTS)])
    assert all(d.metadata["retrieval_score"] is None for d in out)
    assert [d.score for d in out] == pytest.approx(sorted((raw[t] / 5 for t in TEXTS), reverse=True))


def test_a_document_without_a_score_among_scored_ones_takes_the_lowest(reranker):
    raw = dict(zip(TEXTS, reranker.score(QUERY, TEXTS), strict=True))
    docs = [ScoredDocument("a", TEXTS[0], {}, 0.8), ScoredDocument("b", TEXTS[1], {}, 0.4), TEXTS[2]]
    by_text = {d.text: d for d in reranker.rerank(QUERY, docs)}
    assert by_text[TEXTS[2]].score == pytest.approx(0.5 * raw[TEXTS[2]] / 5 + 0.5 * 0.4)
    assert by_text[TEXTS[2]].metadata["retrieval_score"] is None

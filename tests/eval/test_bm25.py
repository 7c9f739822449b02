"""The BM25 baseline: ChromaStore's search shape, filters, edge cases."""

from __future__ import annotations

import pytest

from reasonir_rag.eval.bm25 import BM25Retriever
from reasonir_rag.types import Document, ScoredDocument

DOCS = [
    Document("cat", "A cat is a feline and likes to purr.", {"kind": "animal"}),
    Document("dog", "A dog is the human's best friend and loves to play fetch.", {"kind": "animal"}),
    Document("bird", "A bird is a beautiful animal that can fly.", {"kind": "animal"}),
    Document("jet", "A jet can fly faster than sound.", {"kind": "machine"}),
]


@pytest.fixture(scope="module")
def bm25():
    return BM25Retriever(DOCS)


def test_search_shape_matches_chromastore(bm25):
    hits = bm25.search("which things can fly?", k=3)
    assert all(isinstance(h, ScoredDocument) for h in hits)
    assert {h.id for h in hits} == {"bird", "jet"}  # documents without a shared term are not returned
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].metadata in ({"kind": "animal"}, {"kind": "machine"}) and hits[0].text in {d.text for d in DOCS}
    assert bm25.search("purring feline", k=10, task="biology")[0].id == "cat"  # task accepted, ignored
    assert len(bm25) == 4 and bm25.describe()["documents"] == 4


def test_where_filter_and_batch(bm25):
    assert [h.id for h in bm25.search("can fly", k=5, where={"kind": "machine"})] == ["jet"]
    batch = bm25.search_many(["fly", "fetch"], k=2)
    assert [h.id for h in batch[1]] == ["dog"] and {h.id for h in batch[0]} == {"bird", "jet"}
    with pytest.raises(ValueError, match="plain equality filters"):
        bm25.search("fly", where={"kind": {"$ne": "animal"}})


def test_edge_cases(bm25):
    assert bm25.search("the and is", k=3) == []  # only stopwords
    assert bm25.search("zebra", k=3) == []
    assert len(bm25.search("a cat dog bird jet fly", k=100)) == 4  # k above the corpus size
    with pytest.raises(ValueError, match="k must be a positive integer"):
        bm25.search("fly", k=0)
    with pytest.raises(TypeError, match="queries must be a list of strings"):
        bm25.search_many("fly")
    with pytest.raises(ValueError, match="at least one document"):
        BM25Retriever([])
    with pytest.raises(TypeError, match=r"bad positions \[1\]"):
        BM25Retriever([DOCS[0], "not a document"])

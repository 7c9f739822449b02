"""Retrieval quality with a real encoder (all-MiniLM-L6-v2) on real OpenStax passages."""

from __future__ import annotations

import pytest

from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import Document

QUESTIONS = {
    "How does a buffer keep the pH of a solution almost constant when acid is added?": "chemistry-2e/m68808/0",
    "When I push on a wall, why does the wall push back on me?": "university-physics-volume-1/m58299/0",
    "How do enzymes speed up reactions by lowering the activation energy?": "microbiology/m58819/10",
    "Which process in green plants puts oxygen back into the atmosphere?": "chemistry-2e/m68837/3",
    "Which organelle is the energy transformer of the cell?": "anatomy-and-physiology-2e/m46023/10",
}


@pytest.fixture
def openstax_store(tmp_path, minilm_encoder, openstax_sample):
    store = ChromaStore("openstax-sample", encoder=minilm_encoder, path=tmp_path / "chroma")
    docs = [Document(r["id"], r["text"], {k: r[k] for k in ("book", "section")}) for r in openstax_sample]
    assert store.add(docs).ids == [d.id for d in docs]
    return store


def test_the_matching_passage_ranks_first(openstax_store):
    results = openstax_store.search_many(list(QUESTIONS), k=3)
    for (question, gold), hits in zip(QUESTIONS.items(), results, strict=True):
        assert hits[0].id == gold, f"{question!r}: got {[h.id for h in hits]}"
        assert hits[0].score > hits[1].score
        assert 0.2 < hits[0].score <= 1.0 + 1e-6
        assert set(hits[0].metadata) == {"book", "section"}

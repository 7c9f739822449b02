"""pipeline.Retriever: the one rewrite -> search -> rerank, on a real Chroma store with MiniLM.

The rewriter and reranker here are a user's own (the Rewriter / Reranker protocols), written to make each
composition rule visible: which text is searched with which prefix, how many candidates, what the reranker
is asked. The real QueryRewriter / QwenReranker run through the same class in tests/eval/test_runner.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from reasonir_rag import ChromaStore, InvalidInputError
from reasonir_rag.pipeline.reranker import RERANK_CANDIDATES
from reasonir_rag.pipeline.retriever import Query, Retriever
from reasonir_rag.types import Document, Rewrite, ScoredDocument

PASSAGES = {
    "ice": "Ice floats because solid water is less dense than liquid water; hydrogen bonds hold an open lattice.",
    "salt": "Dissolving salt in water lowers its freezing point, which is why roads are salted in winter.",
    "mito": "Mitochondria make ATP through oxidative phosphorylation across their inner membrane.",
    "photo": "Photosynthesis in chloroplasts turns light, water and carbon dioxide into sugar and oxygen.",
    "orbit": "A satellite in a circular orbit falls freely; gravity supplies the centripetal force.",
}


class TemplateRewriter:
    """Rewrites by a fixed template; ``kind`` decides the prefix its rewrites want."""

    def __init__(self, template: str, kind: str = "query"):
        self.template, self.kind = template, kind
        self.llm: Any = None
        self.seen: list[list[str]] = []

    def rewrite_queries(self, queries):
        self.seen.append(list(queries))
        return [Rewrite(self.template.format(q), self.kind, q, self.template.format(q)) for q in queries]  # type: ignore[arg-type]

    def prompt(self, query):
        return query


class WordReranker:
    """Scores a candidate by whether it contains ``word``; records what it was asked."""

    def __init__(self, word: str):
        self.word = word
        self.llm: Any = None
        self.calls: list[tuple[str, int, int | None, str | None]] = []

    def rerank(self, query, docs, top_n=None, task=None):
        self.calls.append((query, len(docs), top_n, task))
        ranked = sorted(docs, key=lambda d: (self.word in d.text, d.score), reverse=True)
        return [ScoredDocument(d.id, d.text, d.metadata, float(self.word in d.text)) for d in ranked][:top_n]

    def prompts(self, query, texts, task=None):
        return list(texts)


@pytest.fixture(scope="module")
def store(minilm_encoder, tmp_path_factory) -> ChromaStore:
    store = ChromaStore("pipeline", encoder=minilm_encoder, path=tmp_path_factory.mktemp("chroma"))
    store.add([Document(i, t, {"topic": "bio" if i in ("mito", "photo") else "phys"}) for i, t in PASSAGES.items()])
    return store


def test_without_rewriter_or_reranker_it_is_the_store_search(store):
    retriever = Retriever(store, k=3)
    assert retriever.retrieve("why does ice float?") == store.search("why does ice float?", 3)
    assert retriever.retrieve("why does ice float?")[0].id == "ice"


def test_the_rewrite_is_searched_and_a_hyde_rewrite_with_the_document_prefix(tiny_encoder, tmp_path):
    # the tiny ReasonIR-shaped model has ReasonIR's two prefixes (MiniLM has none), so the kinds differ
    store = ChromaStore("prefixes", encoder=tiny_encoder, path=tmp_path)
    store.add([Document(i, t) for i, t in PASSAGES.items()])
    question = "what do cells use to make energy?"
    query_style = Retriever(store, rewriter=TemplateRewriter("{} mitochondria ATP"), k=5)
    hyde = Retriever(store, rewriter=TemplateRewriter("{} mitochondria ATP", kind="document"), k=5)
    rewritten = f"{question} mitochondria ATP"
    assert query_style.retrieve(question) == store.search(rewritten, 5)
    assert hyde.retrieve(question) == store.search(rewritten, 5, prefix_kind="document")
    assert [d.score for d in query_style.retrieve(question)] != [d.score for d in hyde.retrieve(question)]


def test_the_reranker_gets_fetch_k_candidates_and_the_original_question(store):
    reranker = WordReranker("orbit")
    rewriter = TemplateRewriter("{} (rewritten)")
    retriever = Retriever(store, rewriter=rewriter, reranker=reranker, k=2, task="biology")
    top = retriever.retrieve("how do plants make sugar?")
    # all 5 passages are candidates (ReasonIR's 100 > 5), asked with the question, not its rewrite
    assert reranker.calls == [("how do plants make sugar?", 5, 2, "biology")]
    assert rewriter.seen == [["how do plants make sugar?"]]
    assert top[0].id == "orbit" and len(top) == 2
    assert retriever.options().fetch_k == RERANK_CANDIDATES
    assert Retriever(store, k=2).options().fetch_k == 2  # without a reranker only k are fetched


def test_per_call_options_replace_the_retrievers_own(store):
    retriever = Retriever(store, k=4, where={"topic": "bio"}, task="biology")
    assert {d.id for d in retriever.retrieve("water")} == {"mito", "photo"}
    assert {d.id for d in retriever.retrieve("water", where={"topic": "phys"}, k=1)} <= {"ice", "salt", "orbit"}
    opts = retriever.options(instruction="Find the passage")
    assert (opts.task, opts.instruction) == (None, "Find the passage")  # a call's instruction replaces the task
    with pytest.raises(InvalidInputError, match="not both"):
        retriever.options(task="biology", instruction="x")
    with pytest.raises(InvalidInputError, match="k must be an int >= 1"):
        retriever.retrieve("water", k=0)
    with pytest.raises(InvalidInputError, match="where must be a dict"):
        retriever.retrieve("water", where="topic")  # type: ignore[arg-type]


def test_given_queries_skip_the_rewriter_and_vectors_are_searched_as_they_are(store, minilm_encoder):
    rewriter = TemplateRewriter("{} unused")
    retriever = Retriever(store, rewriter=rewriter, k=2)
    vector = minilm_encoder.encode_queries(["satellite gravity"])[0]
    hits = retriever.retrieve_many(["q1", "q2"], queries=[Query("salted roads in winter"), Query("", vector=vector)])
    assert rewriter.seen == []
    assert hits[0][0].id == "salt" and hits[1][0].id == "orbit"
    with pytest.raises(InvalidInputError, match="1 queries for 2 questions"):
        retriever.retrieve_many(["q1", "q2"], queries=[Query("x")])


def test_a_stage_runner_sees_every_stage_in_order_with_its_options(store):
    seen: list[tuple[str, int, int]] = []

    def run(stage, items, compute, options):
        seen.append((stage, len(items), options.fetch_k))
        return compute(items)

    retriever = Retriever(store, rewriter=TemplateRewriter("{}!"), reranker=WordReranker("ice"), k=1, fetch_k=3)
    assert retriever.retrieve_many(["a", "b"], run=run)[0][0].id == "ice"
    assert seen == [("rewrite", 2, 3), ("search", 2, 3), ("rerank", 2, 3)]


def test_bad_parts_and_questions_are_named(store):
    with pytest.raises(InvalidInputError, match="search_many"):
        Retriever(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="list of question strings"):
        Retriever(store).retrieve_many("one string")
    with pytest.raises(InvalidInputError, match="one query string"):
        Retriever(store).retrieve(["a list"])  # type: ignore[arg-type]

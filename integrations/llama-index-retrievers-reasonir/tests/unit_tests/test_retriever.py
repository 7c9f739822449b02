"""ReasonIRRetriever over a reasonir-rag ChromaStore (real embedded Chroma)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import QueryBundle
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import Document
from tests.llamaindex_fixtures import GRAM_PASSAGE, GRAM_QUESTION

from llama_index.retrievers.reasonir import ReasonIRRetriever


def _documents(rows):
    return [Document(r["id"], r["text"], {"book": r["book"], "section": r["section"]}) for r in rows]


@pytest.fixture(scope="module")
def minilm_store(minilm_encoder, openstax_modules, tmp_path_factory):
    store = ChromaStore("li-retriever", encoder=minilm_encoder, path=tmp_path_factory.mktemp("li-store"))
    store.add(_documents(openstax_modules))
    return store


def test_nodes_are_the_store_hits(minilm_store):
    retriever = ReasonIRRetriever(minilm_store, similarity_top_k=4)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve(GRAM_QUESTION)
    hits = minilm_store.search(GRAM_QUESTION, k=4)
    assert len(nodes) == 4 and GRAM_PASSAGE in [n.node.node_id for n in nodes]
    for node, hit in zip(nodes, hits, strict=True):
        assert (node.node.node_id, node.node.get_content(), node.node.metadata) == (hit.id, hit.text, hit.metadata)
        assert node.score == pytest.approx(hit.score)


def test_metadata_filter(minilm_store):
    nodes = ReasonIRRetriever(minilm_store, similarity_top_k=5, where={"book": "Anatomy and Physiology 2e"}).retrieve(
        GRAM_QUESTION)
    assert len(nodes) == 5 and {n.node.metadata["book"] for n in nodes} == {"Anatomy and Physiology 2e"}


def test_a_bundle_with_an_embedding_is_searched_by_that_vector(minilm_store, minilm_encoder):
    vector = minilm_encoder.encode_queries([GRAM_QUESTION])[0]
    retriever = ReasonIRRetriever(minilm_store, similarity_top_k=3)
    by_vector = retriever.retrieve(QueryBundle(query_str="unrelated words about tax law", embedding=vector.tolist()))
    by_text = retriever.retrieve(GRAM_QUESTION)
    assert [n.node.node_id for n in by_vector] == [n.node.node_id for n in by_text]


def test_several_embedding_strings_are_averaged_as_llamaindex_does(minilm_store, minilm_encoder):
    strs = [GRAM_QUESTION, "crystal violet and safranin staining of bacterial cell walls"]
    nodes = ReasonIRRetriever(minilm_store, similarity_top_k=3).retrieve(
        QueryBundle(query_str=GRAM_QUESTION, custom_embedding_strs=strs))
    expected = minilm_store.search_by_vector(minilm_encoder.encode_queries(strs).mean(axis=0), k=3)
    assert [n.node.node_id for n in nodes] == [h.id for h in expected]


def test_async_matches_sync(minilm_store):
    retriever = ReasonIRRetriever(minilm_store, similarity_top_k=5)
    sync = retriever.retrieve(GRAM_QUESTION)
    got = asyncio.run(retriever.aretrieve(GRAM_QUESTION))
    assert [n.node.node_id for n in got] == [n.node.node_id for n in sync]


def test_the_task_prefix_reaches_the_search(tiny_encoder, openstax_modules, tmp_path):
    store = ChromaStore("li-tiny-task", encoder=tiny_encoder, path=tmp_path)
    store.add(_documents(openstax_modules[:10]))
    nodes = ReasonIRRetriever(store, similarity_top_k=10, task="biology").retrieve(GRAM_QUESTION)
    query = tiny_encoder.encode([GRAM_QUESTION], prefix=tiny_encoder.query_prefix(task="biology"))[0]
    docs = {d.id: v for d, v in zip(_documents(openstax_modules[:10]), tiny_encoder.encode(
        [r["text"] for r in openstax_modules[:10]], prefix=tiny_encoder.document_prefix), strict=True)}
    for node in nodes:
        assert node.score == pytest.approx(float(query @ docs[node.node.node_id]), abs=1e-4)
    generic = ReasonIRRetriever(store, similarity_top_k=10).retrieve(GRAM_QUESTION)
    assert not np.allclose(sorted(n.score for n in nodes), sorted(n.score for n in generic), atol=1e-4)


def test_bad_input(minilm_store):
    retriever = ReasonIRRetriever(minilm_store)
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        retriever.retrieve("")
    with pytest.raises(InvalidInputError, match="#0 is empty or whitespace"):
        asyncio.run(retriever.aretrieve("  \n"))
    with pytest.raises(ValueError, match="expected one vector of 384 dims"):
        retriever.retrieve(QueryBundle(query_str="q", embedding=[0.1] * 12))
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="similarity_top_k"):
            ReasonIRRetriever(minilm_store, similarity_top_k=k)
    with pytest.raises(TypeError, match="ChromaStore"):
        ReasonIRRetriever("a collection name")


def test_unknown_task_fails_at_construction(tiny_encoder, tmp_path):
    store = ChromaStore("li-tiny-bad-task", encoder=tiny_encoder, path=tmp_path)
    with pytest.raises(ValueError, match=r"unknown BRIGHT task 'chemistry'"):
        ReasonIRRetriever(store, task="chemistry")


def test_the_query_encoding_sends_llamaindex_embedding_events(tiny_encoder, openstax_modules, tmp_path, events):
    """As BaseEmbedding.get_query_embedding does: EmbeddingStartEvent, the EMBEDDING callback and EmbeddingEndEvent
    with the query as the chunk and its vector (the task's query prefix), before the search."""
    from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
    from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent

    store = ChromaStore("li-embed-events", encoder=tiny_encoder, path=tmp_path)
    store.add(_documents(openstax_modules[:6]))
    debug = LlamaDebugHandler()
    retriever = ReasonIRRetriever(store, similarity_top_k=3, task="biology", callback_manager=CallbackManager([debug]))
    nodes = retriever.retrieve(GRAM_QUESTION)
    (start,), (end,) = events.of(EmbeddingStartEvent), events.of(EmbeddingEndEvent)
    assert start.model_dict["prefix_kind"] == "query" and start.model_dict["task"] == "biology"
    assert end.chunks == [GRAM_QUESTION]
    expected = tiny_encoder.encode_queries([GRAM_QUESTION], task="biology")[0]
    np.testing.assert_allclose(end.embeddings[0], expected, atol=1e-6)
    assert [n.node.node_id for n in nodes] == [h.id for h in store.search_by_vector(expected, 3)]
    ((_, embedded),) = debug.get_event_pairs(CBEventType.EMBEDDING)
    assert embedded.payload["chunks"] == [GRAM_QUESTION]
    # several embedding strings: one encoding of them all, reported once
    events.events.clear()
    strs = [GRAM_QUESTION, "crystal violet and safranin"]
    retriever.retrieve(QueryBundle(query_str=GRAM_QUESTION, custom_embedding_strs=strs))
    assert [e.chunks for e in events.of(EmbeddingEndEvent)] == [strs]
    # a bundle with an embedding is not encoded again: no embedding event
    events.events.clear()
    retriever.retrieve(QueryBundle(query_str=GRAM_QUESTION, embedding=expected.tolist()))
    assert not events.of(EmbeddingStartEvent)


def test_with_a_reranker_it_is_the_core_pipeline_with_rerank_events(minilm_store, tiny_qwen_llm, events):
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from reasonir_rag.pipeline.reranker import QwenReranker
    from reasonir_rag.pipeline.retriever import Retriever

    reranker = QwenReranker(tiny_qwen_llm)
    retriever = ReasonIRRetriever(minilm_store, similarity_top_k=3, reranker=reranker, fetch_k=8)
    nodes = retriever.retrieve(GRAM_QUESTION)
    expected = Retriever(minilm_store, reranker=reranker, k=3, fetch_k=8).retrieve(GRAM_QUESTION)
    assert [(n.node.node_id, round(n.score or 0, 6)) for n in nodes] == [(h.id, round(h.score, 6)) for h in expected]
    assert all("rerank_score" in n.node.metadata for n in nodes)
    (start,), (end,) = events.of(ReRankStartEvent), events.of(ReRankEndEvent)
    assert len(start.nodes) == 8 and start.top_n == 3 and start.query.query_str == GRAM_QUESTION
    assert [n.node.node_id for n in end.nodes] == [n.node.node_id for n in nodes]
    # the query's embedding events, then the rerank events
    from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent

    kinds = (EmbeddingStartEvent, EmbeddingEndEvent, ReRankStartEvent, ReRankEndEvent)
    assert [type(e) for e in events.events if type(e) in kinds] == list(kinds)
    with pytest.raises(TypeError, match="QwenReranker"):
        ReasonIRRetriever(minilm_store, reranker="qwen")  # type: ignore[arg-type]


class _AppendingRewriter:
    """A user's own rewriter (the core Rewriter protocol): appends a fixed hint to each question."""

    llm = None

    def rewrite_queries(self, queries):
        from reasonir_rag.types import Rewrite

        return [Rewrite(f"{q} crystal violet safranin", "query", q, "crystal violet safranin") for q in queries]

    def prompt(self, query):
        return query


def test_with_a_rewriter_the_rewrite_is_searched(minilm_store):
    retriever = ReasonIRRetriever(minilm_store, similarity_top_k=4, rewriter=_AppendingRewriter())
    nodes = retriever.retrieve(GRAM_QUESTION)
    expected = minilm_store.search(f"{GRAM_QUESTION} crystal violet safranin", 4)
    assert [n.node.node_id for n in nodes] == [h.id for h in expected]
    assert [n.node.node_id for n in nodes] != [h.id for h in minilm_store.search(GRAM_QUESTION, 4)]
    # a bundle whose embedding strings were set by a transform is searched as it is, not rewritten again
    bundle = QueryBundle(query_str=GRAM_QUESTION, custom_embedding_strs=["Gram staining of bacteria"])
    assert [n.node.node_id for n in retriever.retrieve(bundle)] == \
        [h.id for h in minilm_store.search("Gram staining of bacteria", 4)]
    with pytest.raises(TypeError, match="QueryRewriter"):
        ReasonIRRetriever(minilm_store, rewriter="rewrite please")  # type: ignore[arg-type]

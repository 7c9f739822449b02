"""LlamaIndex's own HyDEQueryTransform composed with ReasonIRRetriever (TransformRetriever, TransformQueryEngine, or
the transform's bundle handed over by hand): its hypothetical passage reaches the encoder with ReasonIR's DOCUMENT
prefix, the question (``include_original``) with the query prefix, averaged as LlamaIndex does. The LLM is
LlamaIndex's own MockLLM (it writes the HyDE prompt back: a passage that contains the question); the encoder is the
tiny ReasonIR-shaped one, whose query and document prefixes give different vectors."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import get_response_synthesizer
from llama_index.core.indices.query.query_transform.base import HyDEQueryTransform
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine, TransformQueryEngine
from llama_index.core.retrievers import TransformRetriever
from llama_index.core.schema import QueryBundle
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import Document
from tests.llamaindex_fixtures import GRAM_QUESTION

from llama_index.retrievers.reasonir import ReasonIRRetriever

K = 4


@pytest.fixture(scope="module")
def tiny_store(tiny_encoder, openstax_modules, tmp_path_factory):
    store = ChromaStore("li-hyde", encoder=tiny_encoder, path=tmp_path_factory.mktemp("li-hyde"))
    store.add([Document(r["id"], r["text"], {}) for r in openstax_modules[:12]])
    return store


def _passage() -> str:
    """What HyDEQueryTransform(MockLLM()) writes for the question (the prompt, echoed)."""
    return HyDEQueryTransform(llm=MockLLM(), include_original=False).run(GRAM_QUESTION).custom_embedding_strs[0]


def _ids(nodes) -> list[str]:
    return [n.node.node_id for n in nodes]


def test_transform_retriever_encodes_the_passage_with_the_document_prefix(tiny_store, tiny_encoder, events):
    passage = _passage()
    retriever = TransformRetriever(ReasonIRRetriever(tiny_store, similarity_top_k=K, task="biology"),
                                   HyDEQueryTransform(llm=MockLLM(), include_original=False))
    events.events.clear()
    nodes = retriever.retrieve(GRAM_QUESTION)
    (start,), (end,) = events.of(EmbeddingStartEvent), events.of(EmbeddingEndEvent)
    assert start.model_dict["prefix_kind"] == "document" and end.chunks == [passage]
    as_document = tiny_encoder.encode_documents([passage])[0]
    np.testing.assert_allclose(end.embeddings[0], as_document, atol=1e-6)
    assert _ids(nodes) == [h.id for h in tiny_store.search_many([passage], K, prefix_kind="document")[0]]
    # what it would have been as a query (LlamaIndex's default for custom_embedding_strs): another vector
    as_query = tiny_encoder.encode_queries([passage], task="biology")[0]
    assert np.abs(as_document - as_query).max() > 1e-3


def test_with_the_original_question_each_gets_its_prefix_and_they_are_averaged(tiny_store, tiny_encoder, events):
    passage = _passage()
    retriever = TransformRetriever(ReasonIRRetriever(tiny_store, similarity_top_k=K),
                                   HyDEQueryTransform(llm=MockLLM(), include_original=True))
    events.events.clear()
    nodes = retriever.retrieve(GRAM_QUESTION)
    ends = {e.chunks[0]: e for e in events.of(EmbeddingEndEvent)}
    assert set(ends) == {passage, GRAM_QUESTION}
    kinds = {s.model_dict["prefix_kind"] for s in events.of(EmbeddingStartEvent)}
    assert kinds == {"query", "document"}
    mean = np.mean([tiny_encoder.encode_documents([passage])[0], tiny_encoder.encode_queries([GRAM_QUESTION])[0]],
                   axis=0)
    np.testing.assert_allclose(ends[passage].embeddings[0], tiny_encoder.encode_documents([passage])[0], atol=1e-6)
    assert _ids(nodes) == [h.id for h in tiny_store.search_by_vector(mean, K)]


def test_transform_query_engine_and_a_bundle_handed_over_by_hand(tiny_store, tiny_encoder, events):
    passage = _passage()
    expected = [h.id for h in tiny_store.search_many([passage], K, prefix_kind="document")[0]]
    retriever = ReasonIRRetriever(tiny_store, similarity_top_k=K)
    engine = TransformQueryEngine(
        RetrieverQueryEngine(retriever=retriever, response_synthesizer=get_response_synthesizer(llm=MockLLM())),
        query_transform=HyDEQueryTransform(llm=MockLLM(), include_original=False))
    events.events.clear()
    assert _ids(engine.retrieve(QueryBundle(GRAM_QUESTION))) == expected
    response = engine.query(GRAM_QUESTION)
    assert _ids(response.source_nodes) == expected
    assert all(s.model_dict["prefix_kind"] == "document" for s in events.of(EmbeddingStartEvent))
    bundle = HyDEQueryTransform(llm=MockLLM(), include_original=False).run(GRAM_QUESTION)
    assert _ids(retriever.retrieve(bundle)) == expected


def test_strings_of_other_transforms_keep_the_query_prefix(tiny_store, events):
    """A custom embedding string that no HyDE transform wrote (FeedbackQueryTransform puts the original question
    there) is a query, LlamaIndex's convention."""
    retriever = ReasonIRRetriever(tiny_store, similarity_top_k=K)
    events.events.clear()
    nodes = retriever.retrieve(QueryBundle("a rewritten question", custom_embedding_strs=[GRAM_QUESTION]))
    (start,) = events.of(EmbeddingStartEvent)
    assert start.model_dict["prefix_kind"] == "query"
    assert _ids(nodes) == [h.id for h in tiny_store.search(GRAM_QUESTION, K)]

"""LlamaIndex's own HyDEQueryTransform over a VectorStoreIndex with ReasonIREmbedding (index.as_retriever() inside a
TransformRetriever): the vector retriever asks for query embeddings of the transform's strings, and the passage the
transform wrote is embedded with ReasonIR's DOCUMENT prefix all the same (the question with the query prefix), read
back from LlamaIndex's embedding events and from the scores Chroma computed. The LLM is LlamaIndex's MockLLM (it
writes the HyDE prompt back); the encoder is the tiny ReasonIR-shaped one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.indices.query.query_transform.base import HyDEQueryTransform
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import TransformRetriever
from llama_index.core.schema import MetadataMode, QueryBundle, TextNode
from llama_index.vector_stores.chroma import ChromaVectorStore
from tests.llamaindex_fixtures import GRAM_QUESTION, new_collection

from llama_index.embeddings.reasonir import ReasonIREmbedding, hyde


@pytest.fixture(scope="module")
def tiny_index(tiny_encoder, openstax_modules, chroma_client):
    nodes = [TextNode(id_=r["id"], text=r["text"]) for r in openstax_modules[:8]]
    store = ChromaVectorStore(chroma_collection=new_collection(chroma_client, "li-hyde-index"))
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=emb)
    docs = tiny_encoder.encode_documents([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes])
    return index, {n.node_id: v for n, v in zip(nodes, docs, strict=True)}


@pytest.mark.parametrize("include_original", [False, True])
def test_the_hyde_passage_gets_the_document_prefix_in_a_vector_index(tiny_index, tiny_encoder, events,
                                                                    include_original):
    index, docs = tiny_index
    retriever = TransformRetriever(index.as_retriever(similarity_top_k=8),
                                   HyDEQueryTransform(llm=MockLLM(), include_original=include_original))
    events.events.clear()
    hits = retriever.retrieve(GRAM_QUESTION)
    ends = {e.chunks[0]: e.embeddings[0] for e in events.of(EmbeddingEndEvent)}
    (passage,) = [c for c in ends if c != GRAM_QUESTION]
    assert "Passage" in passage and GRAM_QUESTION in passage  # MockLLM wrote the prompt back
    as_document = tiny_encoder.encode_documents([passage])[0]
    np.testing.assert_allclose(ends[passage], as_document, atol=1e-5)
    assert np.abs(as_document - tiny_encoder.encode_queries([passage], task="biology")[0]).max() > 1e-3
    vectors = [as_document]
    if include_original:
        question = tiny_encoder.encode_queries([GRAM_QUESTION], task="biology")[0]
        np.testing.assert_allclose(ends[GRAM_QUESTION], question, atol=1e-5)
        vectors.append(question)
    else:
        assert GRAM_QUESTION not in ends
    searched = np.mean(vectors, axis=0)
    searched = searched / np.linalg.norm(searched)
    for hit in hits:  # ChromaVectorStore scores exp(-cosine distance): the cosine Chroma computed
        assert 1.0 + math.log(hit.score) == pytest.approx(float(searched @ docs[hit.node.node_id]), abs=1e-4)


def test_only_what_a_hyde_transform_wrote_is_a_passage(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder)
    before = QueryBundle("q", custom_embedding_strs=["the question"])
    after = QueryBundle("q", custom_embedding_strs=["a hypothetical passage", "the question"])
    assert hyde.note_hyde_output(before, after) == ["a hypothetical passage"]
    assert hyde.is_hyde_passage("a hypothetical passage") and not hyde.is_hyde_passage("the question")
    np.testing.assert_allclose(emb.get_query_embedding("a hypothetical passage"),
                               tiny_encoder.encode_documents(["a hypothetical passage"])[0], atol=1e-6)
    np.testing.assert_allclose(emb.get_query_embedding("the question"),
                               tiny_encoder.encode_queries(["the question"])[0], atol=1e-6)
    # the newest REMEMBERED passages are kept, the oldest forgotten
    for i in range(hyde.REMEMBERED):
        hyde.note_hyde_output(None, QueryBundle("q", custom_embedding_strs=[f"passage {i}"]))
    assert not hyde.is_hyde_passage("a hypothetical passage") and hyde.is_hyde_passage(f"passage {hyde.REMEMBERED - 1}")
    assert hyde.install() is hyde.install()  # one watcher per process


async def test_the_async_query_embedding_keeps_the_hyde_rule(tiny_encoder):
    """``aget_query_embedding`` (what LlamaIndex's async retrievers call) embeds a noted HyDE passage with the
    document prefix, as the sync path does, and any other query with the query prefix."""
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    passage = "A hypothetical passage: the Gram stain's crystal violet stays in thick peptidoglycan walls."
    hyde.note_hyde_output(QueryBundle(GRAM_QUESTION), QueryBundle(GRAM_QUESTION, custom_embedding_strs=[passage]))
    np.testing.assert_allclose(await emb.aget_query_embedding(passage), tiny_encoder.encode_documents([passage])[0],
                               atol=1e-5)
    np.testing.assert_allclose(await emb.aget_query_embedding(GRAM_QUESTION),
                               tiny_encoder.encode_queries([GRAM_QUESTION], task="biology")[0], atol=1e-5)

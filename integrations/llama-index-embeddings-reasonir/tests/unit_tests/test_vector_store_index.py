"""VectorStoreIndex over LlamaIndex's ChromaVectorStore (real embedded Chroma) with ReasonIREmbedding."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.vector_stores.chroma import ChromaVectorStore
from reasonir_rag.errors import InvalidInputError
from tests.llamaindex_fixtures import GRAM_PASSAGE, GRAM_QUESTION, new_collection

from llama_index.embeddings.reasonir import ReasonIREmbedding


def _nodes(rows):
    return [TextNode(id_=r["id"], text=r["text"], metadata={"book": r["book"], "section": r["section"]})
            for r in rows]


@pytest.fixture(scope="module")
def minilm_index(minilm_encoder, openstax_modules, chroma_client):
    collection = new_collection(chroma_client, "li-minilm")
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    emb = ReasonIREmbedding(encoder=minilm_encoder)
    return VectorStoreIndex(_nodes(openstax_modules), storage_context=storage, embed_model=emb), collection


def test_retrieves_the_passage_that_answers(minilm_index):
    index, _ = minilm_index
    hits = index.as_retriever(similarity_top_k=3).retrieve(GRAM_QUESTION)
    assert GRAM_PASSAGE in [h.node.node_id for h in hits]
    assert all(h.node.metadata["book"] == "Microbiology" for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_async_retrieval_matches(minilm_index):
    index, _ = minilm_index
    retriever = index.as_retriever(similarity_top_k=5)
    sync = [(h.node.node_id, h.score) for h in retriever.retrieve(GRAM_QUESTION)]
    hits = asyncio.run(retriever.aretrieve(GRAM_QUESTION))
    assert [h.node.node_id for h in hits] == [i for i, _ in sync]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in sync], atol=1e-5)


def test_stored_vectors_are_the_core_document_embeddings(minilm_index, minilm_encoder, openstax_modules):
    _, collection = minilm_index
    row = next(r for r in openstax_modules if r["id"] == GRAM_PASSAGE)
    content = _nodes([row])[0].get_content(metadata_mode=MetadataMode.EMBED)  # what LlamaIndex embeds
    assert content.startswith("book: Microbiology") and content.endswith(row["text"])
    got = collection.get(ids=[GRAM_PASSAGE], include=["embeddings"])
    np.testing.assert_allclose(got["embeddings"][0], minilm_encoder.encode_documents([content])[0], atol=1e-5)


def test_each_side_gets_its_prefix_inside_a_real_index(tiny_encoder, openstax_modules, chroma_client, events):
    """With ReasonIR's prefixes (tiny ReasonIR-shaped model): stored vectors carry the document prefix and the
    query that Chroma searched with carries the task's query prefix, read back from the search scores."""
    collection = new_collection(chroma_client, "li-tiny-prefixes")
    store = ChromaVectorStore(chroma_collection=collection)
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    nodes = _nodes(openstax_modules[:8])
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=emb)
    contents = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    stored = collection.get(ids=[n.node_id for n in nodes], include=["embeddings"])
    by_id = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    doc_side = tiny_encoder.encode(contents, prefix="<|embed|>\n")
    np.testing.assert_allclose([by_id[n.node_id] for n in nodes], doc_side, atol=1e-5)

    events.events.clear()
    hits = index.as_retriever(similarity_top_k=8).retrieve(GRAM_QUESTION)
    query_side = tiny_encoder.encode([GRAM_QUESTION], prefix=tiny_encoder.query_prefix(task="biology"))[0]
    wrong_side = tiny_encoder.encode([GRAM_QUESTION], prefix="<|embed|>\n")[0]
    emitted = [e for e in events.of(EmbeddingEndEvent) if e.chunks == [GRAM_QUESTION]]
    assert len(emitted) == 1
    np.testing.assert_allclose(emitted[0].embeddings[0], query_side, atol=1e-5)
    position = {n.node_id: i for i, n in enumerate(nodes)}
    for hit in hits:  # ChromaVectorStore scores exp(-cosine distance): recover the cosine Chroma computed
        cosine = 1.0 + math.log(hit.score)
        assert cosine == pytest.approx(float(query_side @ doc_side[position[hit.node.node_id]]), abs=1e-4)
    wrong = [float(wrong_side @ doc_side[position[h.node.node_id]]) for h in hits]
    assert max(abs(1.0 + math.log(h.score) - w) for h, w in zip(hits, wrong, strict=True)) > 1e-3


def test_bad_queries_through_the_index(minilm_index):
    index, _ = minilm_index
    retriever = index.as_retriever(similarity_top_k=3)
    with pytest.raises(InvalidInputError, match="#0 is empty or whitespace"):
        retriever.retrieve("   ")

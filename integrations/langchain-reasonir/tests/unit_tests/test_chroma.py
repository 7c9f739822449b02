"""langchain_chroma.Chroma with ReasonIREmbeddings: documents stored with the document prefix, queries searched
with the query prefix (checked against the stored vectors and the distances Chroma returns)."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest
from langchain_chroma import Chroma

from langchain_reasonir import ReasonIREmbeddings

from ..helpers import TINY_TEXTS


@pytest.fixture
def chroma_client(tmp_path):
    return chromadb.PersistentClient(path=str(tmp_path), settings=chromadb.config.Settings(anonymized_telemetry=False))


def test_chroma_indexes_with_the_document_prefix_and_searches_with_the_query_prefix(tiny_encoder, chroma_client):
    emb = ReasonIREmbeddings(encoder=tiny_encoder, task="biology")
    vs = Chroma("lc-prefixes", embedding_function=emb, client=chroma_client,
                collection_configuration={"hnsw": {"space": "cosine"}})
    texts = [t for _, t, _ in TINY_TEXTS]
    ids = vs.add_texts(texts, metadatas=[{"topic": topic} for _, _, topic in TINY_TEXTS],
                       ids=[i for i, _, _ in TINY_TEXTS])
    stored = vs.get(ids=ids, include=["embeddings"])
    by_id = dict(zip(stored["ids"], np.asarray(stored["embeddings"]), strict=True))
    stored_vectors = np.stack([by_id[i] for i in ids])
    np.testing.assert_allclose(stored_vectors, tiny_encoder.encode_documents(texts), atol=1e-5)
    assert np.abs(stored_vectors - tiny_encoder.encode(texts, prefix="")).max() > 1e-3  # the prefix mattered

    question = "How do cells make their energy?"
    hits = vs.similarity_search_with_score(question, k=len(texts))
    assert len(hits) == len(texts)
    with_query_prefix = tiny_encoder.encode_queries([question], task="biology")[0]
    with_doc_prefix = tiny_encoder.encode_documents([question])[0]
    distances = np.array([d for _, d in hits])
    hit_vectors = np.stack([by_id[doc.id] for doc, _ in hits])
    np.testing.assert_allclose(distances, 1.0 - hit_vectors @ with_query_prefix, atol=1e-4)
    assert np.abs(distances - (1.0 - hit_vectors @ with_doc_prefix)).max() > 1e-3
    assert {doc.id for doc, _ in hits} == set(ids) and all(doc.page_content in texts for doc, _ in hits)


def test_chroma_filter_and_mmr_work_through_the_embeddings(tiny_encoder, chroma_client):
    vs = Chroma("lc-filter", embedding_function=ReasonIREmbeddings(encoder=tiny_encoder), client=chroma_client,
                collection_configuration={"hnsw": {"space": "cosine"}})
    vs.add_texts([t for _, t, _ in TINY_TEXTS], metadatas=[{"topic": topic} for _, _, topic in TINY_TEXTS])
    physics = vs.similarity_search("why does ice float?", k=5, filter={"topic": "physics"})
    assert len(physics) == 3 and {d.metadata["topic"] for d in physics} == {"physics"}
    retriever = vs.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 8})
    assert len(retriever.invoke("energy in cells")) == 3


@pytest.mark.asyncio
async def test_chroma_async_add_and_search_match_sync(tiny_encoder, chroma_client):
    vs = Chroma("lc-async", embedding_function=ReasonIREmbeddings(encoder=tiny_encoder), client=chroma_client,
                collection_configuration={"hnsw": {"space": "cosine"}})
    await vs.aadd_texts([t for _, t, _ in TINY_TEXTS], ids=[i for i, _, _ in TINY_TEXTS])
    sync = vs.similarity_search("why does ice float?", k=3)
    got = await vs.asimilarity_search("why does ice float?", k=3)
    assert [d.id for d in got] == [d.id for d in sync] and len(got) == 3

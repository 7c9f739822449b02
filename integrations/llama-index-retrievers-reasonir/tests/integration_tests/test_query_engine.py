"""End to end on the real local vLLM server (SmolLM2): VectorStoreIndex over ChromaVectorStore with ReasonIREmbedding,
ReasonIRReranker scoring through the server, LlamaIndex's OpenAILike LLM answering, and the query transform in a
TransformQueryEngine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex, get_response_synthesizer
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankStartEvent
from llama_index.core.query_engine import RetrieverQueryEngine, TransformQueryEngine
from llama_index.core.schema import MetadataMode, QueryBundle, TextNode
from llama_index.embeddings.reasonir import ReasonIREmbedding
from llama_index.postprocessor.reasonir_rerank import ReasonIRReranker
from llama_index.vector_stores.chroma import ChromaVectorStore
from tests.llamaindex_fixtures import GRAM_QUESTION, new_collection

from llama_index.retrievers.reasonir import ReasonIRQueryTransform


@pytest.fixture(scope="module")
def index(minilm_encoder, openstax_modules, chroma_client):
    nodes = [TextNode(id_=r["id"], text=r["text"], metadata={"section": r["section"]}) for r in openstax_modules]
    store = ChromaVectorStore(chroma_collection=new_collection(chroma_client, "li-engine"))
    return VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                            embed_model=ReasonIREmbedding(encoder=minilm_encoder))


def _engine(index, server_llm, reader_llm) -> RetrieverQueryEngine:
    rerank = ReasonIRReranker(server_llm, top_n=2, keep_retrieval_score=True, max_prompt_tokens=1900)
    return RetrieverQueryEngine(retriever=index.as_retriever(similarity_top_k=5), node_postprocessors=[rerank],
                                response_synthesizer=get_response_synthesizer(llm=reader_llm))


def _check_answer(response, events, served_llm):
    assert isinstance(response.response, str) and response.response.strip()
    sources = response.source_nodes
    assert len(sources) == 2 and sources[0].score >= sources[1].score
    for node in sources:
        meta = node.node.metadata
        assert 0.0 <= meta["rerank_score"] <= 5.0 and "rerank_error" not in meta
        assert node.score == pytest.approx(0.5 * meta["rerank_score"] / 5 + 0.5 * meta["retrieval_score"])
    (start,) = events.of(ReRankStartEvent)
    assert start.model_name == served_llm.model and start.top_n == 2 and len(start.nodes) == 5
    prompts = "\n".join(m.content or "" for e in events.of(LLMChatStartEvent) for m in e.messages)
    assert sources[0].node.get_content() in prompts  # the reader saw the reranked passages ...
    assert "rerank_score" not in prompts and "retrieval_score" not in prompts  # ... without the scores


def test_retriever_query_engine_with_qwen_rerank_and_openai_like(index, server_llm, reader_llm, served_llm,
                                                                 events):
    response = _engine(index, server_llm, reader_llm).query(GRAM_QUESTION)
    _check_answer(response, events, served_llm)
    assert {n.node.metadata["section"] for n in response.source_nodes} & {"Gram Staining",
                                                                           "Preparing Specimens for Light Microscopy"}


def test_transform_query_engine_searches_with_the_rewrite(index, minilm_encoder, server_llm, reader_llm,
                                                           served_llm, events, tmp_path):
    """Rewrite -> embedding -> Chroma -> ReasonIRReranker inside a TransformQueryEngine (retrieve: no second answer)."""
    transform = ReasonIRQueryTransform.from_llm(server_llm, ReasonIREmbedding(encoder=minilm_encoder), max_tokens=32,
                                                cache=tmp_path / "rewrites.sqlite")
    engine = TransformQueryEngine(_engine(index, server_llm, reader_llm), query_transform=transform)
    sources = engine.retrieve(QueryBundle(GRAM_QUESTION))
    assert len(sources) == 2 and all("rerank_score" in n.node.metadata for n in sources)
    (start,) = events.of(ReRankStartEvent)
    assert start.query.query_str == GRAM_QUESTION  # the reranker reads the user's question, not the rewrite
    # the retrieval scores are those of the rewrite's query embedding (recomputed from the cached rewrite)
    bundle = transform.run(GRAM_QUESTION)
    assert len(bundle.custom_embedding_strs[0]) > len(GRAM_QUESTION)
    np.testing.assert_allclose(bundle.embedding, minilm_encoder.encode_queries(bundle.custom_embedding_strs)[0],
                               atol=1e-5)
    for node in sources:
        doc = minilm_encoder.encode_documents([node.node.get_content(metadata_mode=MetadataMode.EMBED)])[0]
        cosine = 1.0 + math.log(node.node.metadata["retrieval_score"])  # ChromaVectorStore: exp(-distance)
        assert cosine == pytest.approx(float(np.dot(bundle.embedding, doc)), abs=1e-4)

"""32 concurrent searches, from threads and from asyncio, through the core store and the LangChain and
LlamaIndex retrievers: every answer equals the sequential one, no errors. MiniLM over 200 real OpenStax passages,
in an embedded Chroma and behind a real Chroma server. Throughput is measured by benchmarks/load.py."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import pytest

from reasonir_rag.index.store import ChromaStore
from reasonir_rag.sample_data import openstax_records
from reasonir_rag.types import Document

N = 32


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(request):
    """32 Python threads each running torch with its own OpenMP pool on 2 shared cores thrash; one intra-op thread
    per call is how a server would run it (and it does not change the results). The corpus is ingested before,
    with every thread (a single-threaded ingest of the 200 passages was most of this module's time)."""
    import torch

    if "store" in request.fixturenames:
        request.getfixturevalue("store")

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(repo_data) -> list[Document]:
    docs = []
    for book in ("chemistry-bundle", "microbiology", "university-physics-bundle", "anatomy-physiology"):
        for rec in islice(openstax_records(book, repo_data / "openstax"), 0, 50 * 29, 29):
            docs.append(Document(rec["id"], rec["text"], {"book": rec["book"]}))
    return docs


@pytest.fixture(scope="module")
def queries(corpus) -> list[str]:
    """32 different questions-like snippets: the opening words of passages spread over the four books."""
    return [" ".join(d.text.split()[:12]) for d in corpus[3::6][:N]]


@pytest.fixture(scope="module")
def ingest_encoder(tmp_path_factory):
    """MiniLM with an embedding cache, so the corpus is encoded once for both stores (searches use the plain
    ``minilm_encoder``: the model itself, not the cache, must answer the concurrent queries)."""
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    return ReasonIREncoder.from_pretrained(preset="minilm", device="cpu",
                                           cache=str(tmp_path_factory.mktemp("emb-cache")))


@pytest.fixture(scope="module")
def store(tmp_path_factory, minilm_encoder, ingest_encoder, corpus) -> ChromaStore:
    path = tmp_path_factory.mktemp("chroma-load")
    ChromaStore("load", encoder=ingest_encoder, path=path).add(corpus)
    return ChromaStore("load", encoder=minilm_encoder, path=path, create=False)


@pytest.fixture(scope="module")
def sequential(store, queries):
    return [_key(store.search(q, k=5)) for q in queries]


def _key(hits) -> list[tuple[str, float]]:
    """Ids and scores of a result list, whatever the framework's type."""
    out = []
    for h in hits:
        if hasattr(h, "node"):  # LlamaIndex NodeWithScore
            out.append((h.node.node_id, float(h.score)))
        elif hasattr(h, "page_content"):  # LangChain Document
            out.append((h.id, float(h.metadata["retrieval_score"])))
        else:
            out.append((h.id, float(h.score)))
    return out


def _same(got, expected) -> None:
    assert len(got) == len(expected) == N
    for g, e in zip(got, expected, strict=True):
        assert [i for i, _ in g] == [i for i, _ in e]
        assert [s for _, s in g] == pytest.approx([s for _, s in e], abs=1e-5)


def _threads(fn, queries):
    with ThreadPoolExecutor(N) as pool:
        return [_key(r) for r in pool.map(fn, queries)]


def _gather(coro_fn, queries):
    async def run():
        return await asyncio.gather(*(coro_fn(q) for q in queries))

    return [_key(r) for r in asyncio.run(run())]


def test_core_store_from_32_threads_and_asyncio(store, queries, sequential):
    assert len(set(queries)) == N and all(len(r) == 5 for r in sequential)
    _same(_threads(lambda q: store.search(q, k=5), queries), sequential)

    async def search(q):
        vector = await store.encoder.aencode_queries([q])
        return await asyncio.to_thread(store.search_by_vector, vector[0], 5)

    _same(_gather(search, queries), sequential)


def test_langchain_retriever_invoke_and_ainvoke(store, queries, sequential):
    from langchain_reasonir import ReasonIRRetriever

    retriever = ReasonIRRetriever(store=store, k=5)
    _same(_threads(retriever.invoke, queries), sequential)
    _same(_gather(retriever.ainvoke, queries), sequential)


def test_llamaindex_retriever_retrieve_and_aretrieve(store, queries, sequential):
    from llama_index.retrievers.reasonir import ReasonIRRetriever

    retriever = ReasonIRRetriever(store, similarity_top_k=5)
    _same(_threads(retriever.retrieve, queries), sequential)
    _same(_gather(retriever.aretrieve, queries), sequential)


def test_32_threads_through_a_chroma_server(chroma_server_factory, minilm_encoder, ingest_encoder, corpus, queries,
                                            sequential):
    """The same through chromadb.HttpClient (one HTTP client shared by 32 threads) to a real ``chroma run``."""
    server = chroma_server_factory().start()
    ChromaStore("load-remote", encoder=ingest_encoder, host="127.0.0.1", port=server.port).add(corpus)
    remote = ChromaStore("load-remote", encoder=minilm_encoder, host="127.0.0.1", port=server.port, create=False)
    _same(_threads(lambda q: remote.search(q, k=5), queries), sequential)
    _same(_threads(lambda q: remote.search_many([q, q], k=5)[1], queries), sequential)

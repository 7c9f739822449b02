"""Bad input through the LangChain surface: the core's cases give the core's clear errors (or its documented, logged
handling), before any model work, and never lose the rest of a batch."""

from __future__ import annotations

import logging

import chromadb
import pytest
from langchain_chroma import Chroma
from langchain_core.documents import Document
from pydantic import ValidationError
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.types import ScoredDocument

from langchain_reasonir import ReasonIREmbeddings, ReasonIRReranker, ReasonIRRetriever


@pytest.fixture(scope="module")
def emb(tiny_encoder):
    return ReasonIREmbeddings(encoder=tiny_encoder)


@pytest.mark.parametrize("bad, fragment", [
    (["ok", ""], "#1 is empty"),
    (["ok", "   \n\t"], "#1 is empty or whitespace"),
    (["ok", None], "#1 is NoneType"),
    ([3, "ok"], "#0 is int"),
])
def test_bad_documents_are_named(emb, bad, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        emb.embed_documents(bad)


def test_every_bad_document_is_listed_at_once_and_wrong_shapes_are_refused(emb):
    with pytest.raises(InvalidInputError, match=r"3 of 4 documents") as info:
        emb.embed_documents(["", "fine", None, " "])
    assert all(f"#{i}" in str(info.value) for i in (0, 2, 3))
    with pytest.raises(TypeError, match="got None"):
        emb.embed_documents(None)
    with pytest.raises(InvalidInputError, match="got one str"):
        emb.embed_documents("a single string")
    assert emb.embed_documents([]) == []


@pytest.mark.parametrize("bad, fragment", [
    ("", "#0 is empty"), ("  ", "#0 is empty or whitespace"), (None, "got NoneType"), (["a", "b"], "embed_documents"),
])
def test_bad_queries(emb, bad, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        emb.embed_query(bad)


@pytest.mark.asyncio
async def test_bad_input_async(emb):
    with pytest.raises(InvalidInputError, match="#1 is NoneType"):
        await emb.aembed_documents(["ok", None])
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        await emb.aembed_query("")


def test_lone_surrogates_and_huge_documents_are_handled_and_logged(emb, caplog):
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.encoder"):
        vectors = emb.embed_documents(["broken \ud800 text", "fine", "word " * 100_000])
    assert len(vectors) == 3 and all(len(v) == emb.encoder.dim for v in vectors)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "lone surrogates" in messages and "truncated 1 of 3" in messages


def test_unknown_task_per_call(emb):
    with pytest.raises(ValueError, match="unknown BRIGHT task 'chem'"):
        emb.embed_query("q", task="chem")
    with pytest.raises(ValueError, match="not both"):
        emb.embed_query("q", task="biology", instruction="x")


def test_chroma_add_with_a_bad_text_writes_nothing(emb, tmp_path):
    settings = chromadb.config.Settings(anonymized_telemetry=False)
    client = chromadb.PersistentClient(path=str(tmp_path), settings=settings)
    vs = Chroma("lc-bad", embedding_function=emb, client=client)
    vs.add_texts(["first good text"])
    with pytest.raises(InvalidInputError, match="#1 is empty"):
        vs.add_texts(["good", "", "also good"])
    assert len(vs.get()["ids"]) == 1


def test_retriever_bad_input(tiny_store):
    retriever = ReasonIRRetriever(store=tiny_store, k=2)
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        retriever.invoke("   ")
    with pytest.raises(TypeError, match="one query string"):
        retriever.invoke(["two", "queries"])
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        retriever.invoke("q", k=0)
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['top_k'\]"):
        retriever.invoke("q", top_k=3)
    with pytest.raises(TypeError, match="where must be a dict"):
        retriever.invoke("q", where="topic=physics")
    with pytest.raises(ValueError, match="unknown BRIGHT task"):
        retriever.invoke("q", task="chem")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ReasonIRRetriever(store=tiny_store, k=0)
    with pytest.raises(ValidationError, match="Input should be a valid integer"):
        ReasonIRRetriever(store=tiny_store, k=True)
    with pytest.raises(TypeError, match="must be a reasonir_rag ChromaStore"):
        ReasonIRRetriever(store="my-collection")
    with pytest.raises(ValidationError, match="Extra inputs"):
        ReasonIRRetriever(store=tiny_store, search_kwargs={"k": 3})
    assert retriever.invoke("q", where={"topic": "nothing-matches"}) == []


def test_reranker_bad_input(tiny_qwen_reranker):
    rr = ReasonIRReranker(reranker=tiny_qwen_reranker)
    doc = Document(page_content="doc")
    assert rr.compress_documents([], "q") == []
    for bad_query in ("", "   ", None, 42):
        with pytest.raises(InvalidInputError, match="query"):
            rr.compress_documents([doc], bad_query)
    with pytest.raises(InvalidInputError, match="got NoneType"):
        rr.compress_documents(None, "q")
    with pytest.raises(InvalidInputError, match=r"#1 is NoneType.*#2 is int"):
        rr.compress_documents([doc, None, 3], "q")
    with pytest.raises(InvalidInputError, match="non-finite"):
        rr.compress_documents([Document(page_content="t", metadata={"retrieval_score": float("nan")})], "q")
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ReasonIRReranker(reranker=tiny_qwen_reranker, top_n=0)
    with pytest.raises(TypeError, match="QwenReranker, a model spec string or a LangChain chat"):
        ReasonIRReranker(reranker=3)
    # an empty page is scored 0 with the reason kept (the core's documented handling), the rest still ranked
    out = rr.compress_documents([Document(page_content=""), doc], "q")
    empty = next(d for d in out if d.page_content == "")
    assert empty.metadata["rerank_score"] == 0.0 and empty.metadata["rerank_error"] == "empty document"
    # plain strings and core documents are accepted too, and come back as LangChain Documents
    mixed = rr.compress_documents(["plain text", ScoredDocument("s1", "core doc", {}, 0.4)], "q")
    assert {d.page_content for d in mixed} == {"plain text", "core doc"} and all(isinstance(d, Document) for d in mixed)
    assert next(d for d in mixed if d.page_content == "core doc").id == "s1"

"""The served-embeddings encoder against a real vLLM pooling server for CPU (the tiny model, float32).

The server runs the tiny ReasonIR-shaped Llama bidirectionally and hands back every token's hidden state;
the client pools the text tokens only: that is ReasonIR's maths, so the vectors must equal the local
encoder's. The gap of server-side mean pooling (instruction in the mean; causal when served as plain
LlamaModel) is measured by ``benchmarks/scale.py --served-gap`` and documented in the README.
"""

from __future__ import annotations

import numpy as np
import pytest

from reasonir_rag.encoding.served import OpenAIEmbeddingsEncoder, from_spec, parse_spec
from reasonir_rag.errors import EncoderMismatchError, LLMError
from reasonir_rag.index.store import ChromaStore

DOCS = [
    "Enzymes lower the activation energy of a reaction without being consumed.",
    "A buffer resists changes in pH when small amounts of acid or base are added.",
    "For every action there is an equal and opposite reaction (Newton's third law).",
    "Photosynthesis in chloroplasts releases oxygen from water.",
    "x",
    "A long passage about measurement units and significant figures. " * 40,
]
QUERIES = ["Why does a catalyst speed up a reaction?", "what keeps blood pH stable", "rocket propulsion physics"]


@pytest.fixture(scope="module")
def remote(vllm_token_server, served_tiny_dir) -> OpenAIEmbeddingsEncoder:
    return OpenAIEmbeddingsEncoder(vllm_token_server.model, vllm_token_server.base_url, pooling="text-tokens",
                                   tokenizer=str(served_tiny_dir), batch_size=4, max_concurrency=2)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_text_token_pooling_is_faithful(remote, served_tiny_encoder):
    """Bidirectional served model + text-token mean on the client == the faithful encoder (measured: cos 1.0)."""
    docs = cosines(remote.encode_documents(DOCS), served_tiny_encoder.encode_documents(DOCS))
    queries = cosines(remote.encode_queries(QUERIES, task="biology"),
                      served_tiny_encoder.encode_queries(QUERIES, task="biology"))
    assert docs.min() >= 0.99999 and queries.min() >= 0.99999, (docs, queries)
    assert remote.dim == served_tiny_encoder.dim == 128
    # the same prompts and token budget as the local encoder
    assert remote.query_prefix(task="biology") == served_tiny_encoder.query_prefix(task="biology")
    assert remote.text_budget(remote.document_prefix) == served_tiny_encoder.text_budget(remote.document_prefix)
    assert remote.count_tokens(DOCS[0]) == served_tiny_encoder.count_tokens(DOCS[0])


def test_store_end_to_end_with_the_served_encoder(remote, served_tiny_encoder, tmp_path):
    store = ChromaStore("served", encoder=remote, path=str(tmp_path / "chroma"))
    first = store.add(DOCS)
    ids = first.ids
    assert store.count() == len(DOCS) and first.added == len(DOCS)
    assert store.add(DOCS).unchanged == len(DOCS)  # the fingerprint and hashes hold across calls
    hits = store.search(QUERIES[1], k=3)
    local = served_tiny_encoder.encode_queries([QUERIES[1]])[0] @ served_tiny_encoder.encode_documents(DOCS).T
    assert [h.id for h in hits] == [ids[i] for i in np.argsort(-local)[:3]]
    assert [h.score for h in hits] == pytest.approx(sorted(local, reverse=True)[:3], abs=1e-4)
    with pytest.raises(EncoderMismatchError, match="weights"):  # a served index is not a local-weights index
        ChromaStore("served", encoder=served_tiny_encoder, path=str(tmp_path / "chroma"))


def test_spec_round_trip_and_bad_input(remote, vllm_token_server):
    spec, kwargs = remote.load_spec()
    assert parse_spec(spec) == (vllm_token_server.model, vllm_token_server.base_url)
    again = from_spec(spec, **kwargs)
    np.testing.assert_allclose(again.encode_documents(DOCS[:2]), remote.encode_documents(DOCS[:2]), atol=1e-6)
    with pytest.raises(ValueError, match="#1 is empty"):
        remote.encode_documents(["fine", "  "])
    wrong_mode = OpenAIEmbeddingsEncoder(vllm_token_server.model, vllm_token_server.base_url, max_retries=0)
    with pytest.raises(LLMError, match=r"embeddings request to http://127\.0\.0\.1.*does not support Embeddings"):
        wrong_mode.encode_documents(["this server pools tokens, not texts"])


def test_async_encoding_awaits_asyncopenai_and_matches(remote, monkeypatch):
    """``aencode_queries`` / ``aencode_documents`` go through ``AsyncOpenAI`` (the sync client is made to fail) and
    give the sync path's vectors."""
    import asyncio

    want_docs, want_queries = remote.encode_documents(DOCS), remote.encode_queries(QUERIES, task="biology")

    def refuse(*args, **kwargs):
        raise AssertionError("the async path used the sync client")

    monkeypatch.setattr(remote._http, "call", refuse)

    async def both():
        return await asyncio.gather(remote.aencode_documents(DOCS), remote.aencode_queries(QUERIES, task="biology"))

    docs, queries = asyncio.run(both())
    assert np.allclose(docs, want_docs, atol=1e-6) and np.allclose(queries, want_queries, atol=1e-6)
    assert docs.shape == (len(DOCS), 128)

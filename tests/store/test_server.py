"""Server mode: a real ``chroma run`` on loopback, reached through chromadb.HttpClient."""

from __future__ import annotations

import pytest

from reasonir_rag.errors import EncoderMismatchError
from reasonir_rag.index.store import ChromaStore
from tests.servers import free_port

TEXTS = [
    "Enzymes lower the activation energy of a reaction.",
    "Every action has an equal and opposite reaction.",
    "A buffer resists changes in pH.",
]


def test_add_and_search_through_the_server(chroma_server, tiny_encoder, minilm_encoder):
    host, port = chroma_server
    store = ChromaStore("server-test", encoder=tiny_encoder, host=host, port=port, auth_token="secret-token")
    assert type(store.client).__name__ == "Client" and store.client.heartbeat() > 0
    ids = store.add(TEXTS, metadatas=[{"n": i} for i in range(3)]).ids
    again = store.add(TEXTS, metadatas=[{"n": i} for i in range(3)])
    assert again.ids == ids and again.unchanged == 3
    q = tiny_encoder.encode_queries(["opposite reaction"])[0]
    expected = dict(zip(ids, (tiny_encoder.encode_documents(TEXTS) @ q).tolist(), strict=True))
    hits = store.search("opposite reaction", k=3)
    assert [h.id for h in hits] == sorted(expected, key=expected.get, reverse=True)
    assert [h.score for h in hits] == pytest.approx([expected[h.id] for h in hits], abs=1e-4)

    again = ChromaStore("server-test", encoder=tiny_encoder, host=host, port=port)  # a new connection
    assert again.count() == 3 and again.get([ids[0]])[0].metadata == {"n": 0}
    with pytest.raises(EncoderMismatchError):
        ChromaStore("server-test", encoder=minilm_encoder, host=host, port=port)


def test_unreachable_server_is_a_clear_error(tiny_encoder):
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}") as err:
        ChromaStore("nowhere", encoder=tiny_encoder, host="127.0.0.1", port=port, auth_token="secret-token")
    assert "secret-token" not in str(err.value)

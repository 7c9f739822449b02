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
    assert store.client._server._session.timeout.connect == 5.0  # chromadb's own session has no timeout at all
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


@pytest.fixture
def proxy(chroma_server):
    """A loopback proxy that records what the client sends (``chroma run`` 1.5 checks no credentials itself)."""
    from tests.reliability.conftest import RecordingProxy

    recorder = RecordingProxy(upstream=chroma_server[1])
    yield recorder
    recorder.close()


def test_a_token_echoed_into_a_store_calls_error_is_masked_in_the_python_exception(proxy, tiny_encoder):
    """The server answers, then a proxy starts quoting the request's headers in its 401s: the exception each store
    call raises, with every exception chained to it, shows the token masked (not only the CLI's line)."""
    import traceback

    from reasonir_rag.index.connection import ChromaConnection

    token = "tok-echoed-5772156649"
    connection = ChromaConnection(host="127.0.0.1", port=proxy.port, auth_credentials=token)
    store = ChromaStore("echo-test", encoder=tiny_encoder, connection=connection)
    store.add(TEXTS)
    proxy.echo = True
    calls = {"search": lambda: store.search("q"), "get": lambda: store.get(["x"]), "count": store.count,
             "add": lambda: store.add(["a text not stored yet"]), "delete": lambda: store.delete(["x"])}
    for name, call in calls.items():
        with pytest.raises(Exception) as err:
            call()
        shown = "".join(traceback.format_exception(err.value))
        assert token not in shown and "Bearer ***" in shown, (name, shown[-600:])


@pytest.mark.parametrize(("settings", "header", "expected"), [
    ({"auth_credentials": "tok-3141592653"}, "authorization", "Bearer tok-3141592653"),
    ({"auth_credentials": "tok-2718281828", "auth_header": "X-Chroma-Token"}, "x-chroma-token", "tok-2718281828"),
    ({"auth_provider": "basic", "auth_credentials": "reader:pa55-w0rd"}, "authorization",
     "Basic cmVhZGVyOnBhNTUtdzByZA=="),
])
def test_chromas_own_client_auth_settings_reach_the_server(proxy, tiny_encoder, settings, header, expected, caplog):
    from reasonir_rag.index.connection import ChromaConnection

    where = ChromaConnection(host="127.0.0.1", port=proxy.port, **settings)
    store = ChromaStore("auth-settings", encoder=tiny_encoder, connection=where)
    store.add(TEXTS[:2])
    assert store.count() == 2
    probe, *_ = proxy.exchanges  # first the reachability probe: a heartbeat that carries no credentials
    assert probe.path == "/api/v2/heartbeat" and probe.headers.get(header) is None
    calls = proxy.client_calls
    assert len(calls) == len(proxy.exchanges) - 1 and len(calls) >= 4
    assert {e.headers.get(header) for e in calls} == {expected}
    assert settings["auth_credentials"] not in repr(where) + repr(store) + caplog.text


def test_auth_from_chromas_environment_variables_and_the_deprecated_alias(proxy, tiny_encoder, monkeypatch, caplog):
    import reasonir_rag.index.connection as connection

    monkeypatch.setenv("CHROMA_CLIENT_AUTH_CREDENTIALS", "env-tok-1618033988")
    monkeypatch.setenv("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER", "X-Chroma-Token")
    ChromaStore("auth-env", encoder=tiny_encoder, host="127.0.0.1", port=proxy.port)
    assert {e.headers.get("x-chroma-token") for e in proxy.client_calls} == {"env-tok-1618033988"}

    for name in ("CHROMA_CLIENT_AUTH_CREDENTIALS", "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHROMA_AUTH_TOKEN", "old-tok-1414213562")
    monkeypatch.setattr(connection, "_deprecation_logged", False)
    seen = len(proxy.client_calls)
    with caplog.at_level("WARNING", logger="reasonir_rag.index.connection"):
        for _ in range(2):
            ChromaStore("auth-env", encoder=tiny_encoder, host="127.0.0.1", port=proxy.port)
    assert {e.headers.get("authorization") for e in proxy.client_calls[seen:]} == {"Bearer old-tok-1414213562"}
    assert caplog.text.count("$CHROMA_AUTH_TOKEN is deprecated") == 1 and "old-tok" not in caplog.text


def test_bad_auth_settings_are_named(monkeypatch):
    from reasonir_rag.index.connection import ChromaConnection

    for name in ("CHROMA_AUTH_TOKEN", "CHROMA_CLIENT_AUTH_CREDENTIALS", "CHROMA_CLIENT_AUTH_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="auth_provider must be one of token, basic"):
        ChromaConnection(host="127.0.0.1", auth_provider="kerberos")
    with pytest.raises(ValueError, match="auth_header must be one of Authorization, X-Chroma-Token"):
        ChromaConnection(host="127.0.0.1", auth_header="X-Api-Key")
    with pytest.raises(ValueError, match="'user:password'"):
        ChromaConnection(host="127.0.0.1", auth_provider="basic", auth_credentials="no-colon-here").auth_settings()
    with pytest.raises(ValueError, match="needs credentials"):
        ChromaConnection(host="127.0.0.1", auth_provider="basic").auth_settings()

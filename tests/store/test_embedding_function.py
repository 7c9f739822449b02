"""ReasonIREmbeddingFunction with plain chromadb, embedded (PersistentClient) and against a real ``chroma run``:
the prefixes, the persisted config that rebuilds the encoder, and refusing another encoder as ChromaStore does."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest

from reasonir_rag.errors import EncoderMismatchError
from reasonir_rag.index.embedding_function import ReasonIREmbeddingFunction, get_collection, get_or_create_collection
from reasonir_rag.index.store import ChromaStore

TEXTS = [
    "Enzymes lower the activation energy of a reaction without being consumed.",
    "Every action has an equal and opposite reaction.",
    "A buffer holds a weak acid and its conjugate base, so the pH barely moves.",
]
IDS = ["enzyme", "newton", "buffer"]


def _settings():
    return chromadb.config.Settings(anonymized_telemetry=False)  # a new one per client: chromadb's clients mutate it


def _expected_order(encoder, query, **kwargs):
    q = encoder.encode_queries([query], **kwargs)[0]
    scores = encoder.encode_documents(TEXTS) @ q
    return [IDS[i] for i in np.argsort(-scores)]


def _round_trip(make_client, tiny_encoder, minilm_encoder, name):
    ef = ReasonIREmbeddingFunction(tiny_encoder, task="biology")
    col = get_or_create_collection(make_client(), name, ef)
    col.add(ids=IDS, documents=TEXTS)  # chromadb calls the embedding function: the document prefix
    stored = col.get(ids=IDS, include=["embeddings"])["embeddings"]
    np.testing.assert_allclose(np.asarray(stored), tiny_encoder.encode_documents(TEXTS), atol=1e-5)
    got = col.query(query_texts=["Why does a pushed wall push back?"], n_results=3)  # embed_query: the task's
    assert got["ids"][0] == _expected_order(tiny_encoder, "Why does a pushed wall push back?", task="biology")
    config = col.configuration_json["embedding_function"]
    assert config["name"] == "reasonir" and config["config"]["fingerprint"] == ef.fingerprint

    # no embedding function given: chromadb rebuilds ours from the persisted config (None rather than chromadb's
    # default argument, which the suite's guard against the ONNX default replaces with a stand-in)
    reopened = make_client().get_collection(name, embedding_function=None)
    again = reopened.query(query_texts=["buffer and pH"], n_results=2)
    assert again["ids"][0] == _expected_order(tiny_encoder, "buffer and pH", task="biology")[:2]
    assert get_collection(make_client(), name).count() == 3

    with pytest.raises(EncoderMismatchError, match="differ in"):
        get_collection(make_client(), name, ReasonIREmbeddingFunction(minilm_encoder))
    with pytest.raises(EncoderMismatchError, match="differ in"):
        get_or_create_collection(make_client(), name, ReasonIREmbeddingFunction(minilm_encoder))
    return col


def test_embedded_collection_remembers_its_encoder(tmp_path, tiny_encoder, minilm_encoder):
    path = str(tmp_path / "chroma")
    _round_trip(lambda: chromadb.PersistentClient(path=path, settings=_settings()), tiny_encoder, minilm_encoder,
                "plain-chroma")
    store = ChromaStore("plain-chroma", encoder=tiny_encoder, path=path)  # the store opens it as its own
    hits = store.search("buffer and pH", k=3, task="biology")  # the same vectors: the same ranking as chromadb's
    assert store.count() == 3 and [h.id for h in hits] == _expected_order(tiny_encoder, "buffer and pH", task="biology")
    with pytest.raises(EncoderMismatchError, match="differ in"):
        ChromaStore("plain-chroma", encoder=minilm_encoder, path=path)


def test_server_collection_remembers_its_encoder(chroma_server, tiny_encoder, minilm_encoder):
    host, port = chroma_server
    _round_trip(lambda: chromadb.HttpClient(host=host, port=port, settings=_settings()), tiny_encoder, minilm_encoder,
                "plain-chroma-server")


def test_a_store_collection_opened_with_the_embedding_function(tmp_path, tiny_encoder, minilm_encoder):
    path = tmp_path / "chroma"
    ChromaStore("from-store", encoder=tiny_encoder, path=path).add(TEXTS, ids=IDS)
    client = chromadb.PersistentClient(path=str(path), settings=_settings())
    col = get_collection(client, "from-store", ReasonIREmbeddingFunction(tiny_encoder))
    assert col.query(query_texts=["enzymes"], n_results=3)["ids"][0] == _expected_order(tiny_encoder, "enzymes")
    with pytest.raises(EncoderMismatchError):
        get_collection(client, "from-store", ReasonIREmbeddingFunction(minilm_encoder))


def test_config_round_trip_and_a_changed_encoder_is_refused(tiny_encoder, minilm_encoder):
    ef = ReasonIREmbeddingFunction(tiny_encoder, instruction="Retrieve a passage that answers the question")
    config = ef.get_config()
    rebuilt = ReasonIREmbeddingFunction.build_from_config(config)
    assert rebuilt.fingerprint == ef.fingerprint and rebuilt.instruction == ef.instruction
    np.testing.assert_allclose(np.asarray(rebuilt.embed_query(["why?"])),
                               tiny_encoder.encode_queries(["why?"], instruction=ef.instruction), atol=1e-5)
    with pytest.raises(EncoderMismatchError, match="now loads as"):
        ReasonIREmbeddingFunction.build_from_config({**config, "fingerprint": {**config["fingerprint"], "dim": 7}})
    with pytest.raises(EncoderMismatchError):
        ef.validate_config_update(config, ReasonIREmbeddingFunction(minilm_encoder).get_config())
    assert ef.default_space() == "cosine" and not ef.is_legacy()
    with pytest.raises(ValueError, match="either instruction= or task="):
        ReasonIREmbeddingFunction(tiny_encoder, instruction="x", task="biology")


def test_plain_create_collection_with_a_named_encoder(tmp_path, tiny_reasonir_dir, tiny_encoder):
    """The issue's own line: ``client.create_collection("docs", embedding_function=ReasonIREmbeddingFunction(...))``
    with only a name; ReasonIR's prefixes on both sides (a task's instruction for queries)."""
    import chromadb

    ef = ReasonIREmbeddingFunction(str(tiny_reasonir_dir), task="biology")
    client = chromadb.PersistentClient(str(tmp_path / "plain"))
    collection = client.create_collection("docs", embedding_function=ef)
    texts = ["Enzymes lower the activation energy of reactions.", "Rivers carve canyons over millions of years."]
    collection.add(ids=["enzyme", "river"], documents=texts)
    stored = collection.get(ids=["enzyme"], include=["embeddings"])["embeddings"][0]
    np.testing.assert_allclose(stored, tiny_encoder.encode_documents(texts[:1])[0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(ef.embed_query(["Why do catalysts work?"]))[0],
                               tiny_encoder.encode_queries(["Why do catalysts work?"], task="biology")[0], atol=1e-5)
    assert collection.query(query_texts=["Why do catalysts work?"], n_results=2)["ids"][0][0] in {"enzyme", "river"}
    with pytest.raises(ValueError, match="Encoder or its name"):
        ReasonIREmbeddingFunction(42)  # type: ignore[arg-type]

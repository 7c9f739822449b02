"""ChromaStore on a real embedded Chroma: persistence, idempotent upserts, fingerprints, prefixes, bad input."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reasonir_rag.errors import CollectionNotFoundError, EncoderMismatchError
from reasonir_rag.index.records import content_id
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import Document, ScoredDocument

TEXTS = [
    "Enzymes lower the activation energy of a reaction without being consumed.",
    "Newton's third law: every action has an equal and opposite reaction.",
    "A buffer holds a weak acid and its conjugate base, so the pH barely moves.",
    "Mitochondria make most of the ATP a cell uses.",
    "Photosynthesis turns carbon dioxide and water into glucose and oxygen.",
]


def _store(tmp_path, encoder, name="test-collection", **kwargs) -> ChromaStore:
    return ChromaStore(name, encoder=encoder, path=tmp_path / "chroma", **kwargs)


def test_persists_across_processes(tmp_path, tiny_reasonir_dir, tiny_encoder):
    script = textwrap.dedent(f"""
        from reasonir_rag import ReasonIREncoder
        from reasonir_rag.index.store import ChromaStore
        enc = ReasonIREncoder.from_pretrained({str(tiny_reasonir_dir)!r}, device="cpu")
        store = ChromaStore("persist-test", encoder=enc, path={str(tmp_path / "chroma")!r})
        ids = store.add({TEXTS!r}, metadatas=[{{"n": i}} for i in range({len(TEXTS)})]).ids
        print(",".join(ids))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    written = done.stdout.strip().split(",")
    assert written == [content_id(t) for t in TEXTS]

    store = _store(tmp_path, tiny_encoder, "persist-test", create=False)
    assert store.count() == len(TEXTS)
    got = store.get(written)
    assert [d.text for d in got] == TEXTS
    assert [d.metadata for d in got] == [{"n": i} for i in range(len(TEXTS))]
    hits = store.search(TEXTS[2], k=len(TEXTS))
    assert sorted(h.id for h in hits) == sorted(written)


def test_add_twice_adds_nothing_and_encodes_nothing(tmp_path, counting):
    store = _store(tmp_path, counting)
    docs = [Document(f"doc-{i}", t, {"i": i}) for i, t in enumerate(TEXTS)]
    first = store.add(docs)
    assert first.ids == [d.id for d in docs]
    assert counting.documents_encoded == len(TEXTS)
    assert first.added == len(TEXTS)

    again = store.add(docs)
    assert again.ids == [d.id for d in docs]
    assert store.count() == len(TEXTS)
    assert counting.documents_encoded == len(TEXTS), "unchanged documents were encoded again"
    assert again.unchanged == len(TEXTS) and again.added == 0

    changed = [*docs[:-1], Document("doc-4", "Photosynthesis stores the sun's energy in sugar.", {"i": 4})]
    store.add(changed)
    assert counting.documents_encoded == len(TEXTS) + 1
    assert store.get(["doc-4"])[0].text.startswith("Photosynthesis stores")

    relabelled = [Document(d.id, d.text, {"i": d.metadata["i"], "tag": "new"}) for d in changed]
    relabel = store.add(relabelled)
    assert counting.documents_encoded == len(TEXTS) + 1, "a metadata-only change must not re-encode"
    assert relabel.metadata_updated == len(TEXTS)
    assert all(d.metadata["tag"] == "new" for d in store.get([d.id for d in docs]))
    assert store.count() == len(TEXTS)


def test_interrupted_ingest_resumes_where_it_stopped(tmp_path, counting):
    store = _store(tmp_path, counting, records_per_call=2)
    store.add(TEXTS[:3])  # as if the run was killed after the first batches
    store.add(TEXTS)
    assert counting.documents_encoded == len(TEXTS)
    assert store.count() == len(TEXTS)


def test_duplicate_ids_in_one_call_first_wins_and_are_named(tmp_path, counting, caplog):
    store = _store(tmp_path, counting)
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.store"):
        stats = store.add(["first text", "second text", "third text", "fourth"], ids=["a", "b", "a", "a"])
    assert stats.ids == ["a", "b"] and stats.duplicates == 2 and stats.duplicate_ids == ["a"]
    assert store.count() == 2
    assert store.get(["a"])[0].text == "first text"
    assert "repeated id" in caplog.text and "first occurrence" in caplog.text
    again = store.add(["first text", "second text", "third text", "fourth"], ids=["a", "b", "a", "a"])
    assert again.unchanged == 2 and counting.documents_encoded == 2  # the rerun encodes nothing


def test_content_hash_ids_are_stable(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    ids = store.add(TEXTS[:2]).ids
    assert ids == [content_id(TEXTS[0]), content_id(TEXTS[1])]
    assert len(ids[0]) == 32 and int(ids[0], 16) >= 0


def test_refuses_another_encoder(tmp_path, tiny_encoder, minilm_encoder):
    _store(tmp_path, tiny_encoder, "shared-name").add(TEXTS[:2])
    with pytest.raises(EncoderMismatchError) as err:
        _store(tmp_path, minilm_encoder, "shared-name")
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "all-MiniLM-L6-v2" in message and tiny_encoder.fingerprint["weights"] in message
    assert "another collection name" in message
    assert "dim" in message.split("differ in:")[1]
    # the collection itself is untouched and still opens with its own encoder
    assert _store(tmp_path, tiny_encoder, "shared-name").count() == 2


def test_queries_get_the_query_prefix_and_documents_the_document_prefix(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    ids = store.add(TEXTS).ids
    query = "Which organelle produces ATP?"
    docs = tiny_encoder.encode_documents(TEXTS)
    for kwargs in ({}, {"task": "biology"}, {"instruction": "Find the passage that answers the question"}):
        q = tiny_encoder.encode_queries([query], **kwargs)[0]
        expected = dict(zip(ids, (docs @ q).tolist(), strict=True))
        hits = store.search(query, k=len(TEXTS), **kwargs)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for hit in hits:
            assert hit.score == pytest.approx(expected[hit.id], abs=1e-4)
    # the same query embedded as a document scores differently: the prefix really reaches the encoder
    as_doc = tiny_encoder.encode_documents([query])[0]
    plain = dict(zip(ids, (docs @ as_doc).tolist(), strict=True))
    hits = store.search(query, k=len(TEXTS))
    assert max(abs(h.score - plain[h.id]) for h in hits) > 1e-3


def test_search_many_encodes_all_queries_in_one_call(tmp_path, counting):
    store = _store(tmp_path, counting)
    store.add(TEXTS)
    calls = []
    original = counting.encode_queries

    def spy(texts, **kwargs):
        calls.append(list(texts))
        return original(texts, **kwargs)

    counting.encode_queries = spy
    results = store.search_many(["ATP", "buffer pH", "third law"], k=2)
    assert calls == [["ATP", "buffer pH", "third law"]]
    assert [len(r) for r in results] == [2, 2, 2]
    assert results[1] == store.search("buffer pH", k=2)


def test_search_by_vector_and_where_filter(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    store.add(TEXTS, metadatas=[{"topic": t} for t in ["bio", "phys", "chem", "bio", "bio"]])
    vec = tiny_encoder.encode_queries(["energy"])[0]
    hits = store.search_by_vector(vec, k=10, where={"topic": "bio"})
    assert len(hits) == 3 and all(h.metadata == {"topic": "bio"} for h in hits)
    assert all(isinstance(h, ScoredDocument) for h in hits)
    assert [h.id for h in store.search("energy", k=3)] == [h.id for h in store.search_by_vector(vec, k=3)]
    with pytest.raises(ValueError, match="64 dims"):
        store.search_by_vector(np.zeros(5), k=1)


def test_document_prefix_search_compares_a_passage_in_document_space(tmp_path, tiny_encoder):
    """A HyDE passage is searched as a document: the same hits as its document-prefix vector, not its query one."""
    store = _store(tmp_path, tiny_encoder)
    store.add(TEXTS)
    passage = "Enzymes lower the activation energy of a reaction."
    as_document = store.search_by_vector(tiny_encoder.encode_documents([passage])[0], k=5)
    as_query = store.search(passage, k=5)
    assert store.search(passage, k=5, prefix_kind="document") == as_document
    assert store.search_many([passage], k=5, prefix_kind="document") == [as_document]
    assert [h.score for h in as_document] != pytest.approx([h.score for h in as_query])
    with pytest.raises(ValueError, match="prefix_kind"):
        store.search(passage, prefix_kind="passage")


def test_k_empty_collection_and_fewer_results(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    assert store.search("anything", k=5) == []
    assert store.search_many(["a", "b"], k=5) == [[], []]
    store.add(TEXTS[:2])
    assert len(store.search("anything", k=50)) == 2
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="k must be"):
            store.search("anything", k=bad)


def test_delete_and_get(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    ids = store.add(TEXTS).ids
    store.delete([ids[0], "not-there"])
    assert store.count() == len(TEXTS) - 1
    assert [d.id for d in store.get([ids[1], ids[0], "not-there"])] == [ids[1]]
    assert store.encoder is tiny_encoder and store.collection_name == "test-collection"
    assert store.client.get_collection("test-collection", embedding_function=None).count() == len(TEXTS) - 1
    every = list(store.iter_documents(page_size=2))  # pages of 2: the last page is partial
    assert sorted(d.id for d in every) == sorted(ids[1:])
    assert {d.id: d.text for d in every} == dict(zip(ids[1:], TEXTS[1:], strict=True))
    with pytest.raises(ValueError, match="page_size"):
        next(store.iter_documents(page_size=0))


def test_metadata_is_made_chroma_safe(tmp_path, tiny_encoder, caplog):
    store = _store(tmp_path, tiny_encoder)
    with caplog.at_level(logging.INFO, logger="reasonir_rag.index.store"):
        store.add(
            [TEXTS[0]],
            ids=["m"],
            metadatas=[
                {
                    "none": None,
                    "list": [1, "two"],
                    "dict": {"a": 1},
                    "flag": True,
                    "n": 3,
                    "x": 0.5,
                    "s": "é",
                }
            ],
        )
    meta = store.get(["m"])[0].metadata
    assert meta == {"list": '[1, "two"]', "dict": '{"a": 1}', "flag": True, "n": 3, "x": 0.5, "s": "é"}
    assert "JSON" in caplog.text and "None" in caplog.text


def test_bad_inputs_to_add(tmp_path, tiny_encoder, caplog):
    store = _store(tmp_path, tiny_encoder)
    assert store.add([]).ids == []
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.store"):
        assert store.add("").ids == []
        stats = store.add(["kept text", "", None, 42, "   \n"], ids=["ok", "empty", "none", "number", "blank"])
    assert stats.ids == ["ok"]
    assert store.count() == 1
    assert stats.invalid == 4
    assert [(r.id, r.reason) for r in stats.rejected] == [
        ("empty", "the text is empty"), ("none", "the text is a NoneType, not a string"),
        ("number", "the text is a int, not a string"), ("blank", "the text is empty")]
    assert "rejected 4 record(s)" in caplog.text and "number: the text is a int" in caplog.text
    with pytest.raises(TypeError, match="got None"):
        store.add(None)
    with pytest.raises(ValueError, match="as long as the texts"):
        store.add(["a", "b"], ids=["only-one"])
    bad_id = store.add(["a", "b"], ids=["", "fine"])
    assert bad_id.ids == ["fine"] and "id #0 must be a non-empty string" in bad_id.rejected[0].reason


def test_a_million_character_document(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    words = "energy enzyme momentum photon cell buffer acid base torque orbit".split()
    rng = np.random.default_rng(0)
    huge = " ".join(rng.choice(words, size=200_000))[:1_000_000]
    assert len(huge) == 1_000_000
    [doc_id] = store.add([huge]).ids
    assert store.get([doc_id])[0].text == huge  # stored whole; the encoder embeds what fits
    assert store.search("energy", k=1)[0].id == doc_id


def test_bad_inputs_to_search(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    store.add(TEXTS)
    with pytest.raises(ValueError, match="empty"):
        store.search("")
    with pytest.raises(TypeError):
        store.search(None)
    with pytest.raises(TypeError, match="search_many"):
        store.search(["a", "b"])
    with pytest.raises(ValueError, match="unknown BRIGHT task 'no-such-task'"):
        store.search("q", task="no-such-task")
    with pytest.raises(ValueError, match="not both"):
        store.search("q", task="biology", instruction="x")
    with pytest.raises(TypeError):
        store.search_many("one string")
    assert store.search_many([]) == []


def test_missing_collection_and_bad_names(tmp_path, tiny_encoder):
    with pytest.raises(CollectionNotFoundError, match="does not exist"):
        _store(tmp_path, tiny_encoder, "never-made", create=False)
    with pytest.raises(ValueError, match="invalid collection name 'x': Chroma needs 3-512 characters"):
        _store(tmp_path, tiny_encoder, "x")


def test_add_embeddings_writes_vectors_made_elsewhere(tmp_path, tiny_encoder):
    """Vectors from the real encoder, written through a RecordedEncoder (no model): the same collection as add()."""
    from reasonir_rag.encoding.recorded import RecordedEncoder

    vectors = tiny_encoder.encode_documents(TEXTS)
    recorded = RecordedEncoder(tiny_encoder.fingerprint)
    store = ChromaStore("made-elsewhere", encoder=recorded, path=tmp_path / "chroma")
    ids = [f"d{i}" for i in range(len(TEXTS))]
    stats = store.add_embeddings(ids, TEXTS, vectors, [{"n": i} for i in range(len(TEXTS))])
    assert (stats.added, stats.ids) == (len(TEXTS), ids)
    again = store.add_embeddings(ids, TEXTS, vectors, [{"n": i} for i in range(len(TEXTS))])
    assert (again.added, again.unchanged) == (0, len(TEXTS))
    # the real encoder opens it (same fingerprint), finds it unchanged, and searches it
    real = ChromaStore("made-elsewhere", encoder=tiny_encoder, path=tmp_path / "chroma", create=False)
    assert real.add([Document(i, t, {"n": n}) for n, (i, t) in enumerate(zip(ids, TEXTS, strict=True))]).unchanged == 5
    assert real.search_by_vector(vectors[3], k=1)[0].id == "d3"
    # bad input is named, and nothing is written
    with pytest.raises(ValueError, match=r"vectors must be \(5, 64\)"):
        store.add_embeddings(ids, TEXTS, vectors[:, :10])
    with pytest.raises(ValueError, match="NaN or infinite"):
        store.add_embeddings(ids, TEXTS, np.full_like(vectors, np.nan))
    with pytest.raises(ValueError, match="ids must be a list as long as the texts"):
        store.add_embeddings(ids[:2], TEXTS, vectors)
    with pytest.raises(RuntimeError, match="has no model"):
        store.search("anything")
    assert store.count() == len(TEXTS)


def test_one_connection_type_for_store_sinks_and_cli(tmp_path, tiny_encoder):
    import argparse

    from reasonir_rag.bulk.sinks import ChromaSink
    from reasonir_rag.cli.common import connection
    from reasonir_rag.index.connection import ChromaConnection

    where = ChromaConnection(path=str(tmp_path / "chroma"))
    store = ChromaStore("conn", encoder=tiny_encoder, connection=where)
    assert store.connection == where and store.connection.describe() == str(tmp_path / "chroma")
    with pytest.raises(ValueError, match="either connection= or"):
        ChromaStore("conn", encoder=tiny_encoder, connection=where, path=tmp_path)
    with pytest.raises(ValueError, match="either path"):
        ChromaConnection(path="x", host="127.0.0.1")
    server = ChromaConnection(host="127.0.0.1", port=8123, auth_token="s3cret", headers={"X-Key": "k3y"})
    assert "s3cret" not in repr(server) and "k3y" not in repr(server) and server.describe() == "http://127.0.0.1:8123"
    sink = ChromaSink("papers", host="127.0.0.1", port=8123, auth_token="s3cret")
    assert sink.connection == ChromaConnection(host="127.0.0.1", port=8123, auth_token="s3cret")
    assert "s3cret" not in repr(sink) and sink.describe() == "Chroma collection 'papers' at http://127.0.0.1:8123"
    args = argparse.Namespace(path=None, host="127.0.0.1", port=8123, ssl=True)
    assert connection(args) == ChromaConnection(host="127.0.0.1", port=8123, ssl=True)


def test_add_moves_its_bar_every_encoder_slice_not_every_chroma_call(tmp_path, counting, monkeypatch):
    """600 new texts in one Chroma call (records_per_call=1000): encoded 256 at a time, the bar advanced after each
    slice (a slow encoder still shows movement), and unchanged texts counted at once on a rerun."""
    import io

    from reasonir_rag.index.writes import ENCODE_SLICE

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    store = ChromaStore("slices", encoder=counting, path=tmp_path / "chroma", records_per_call=1000)
    texts = [f"passage {i} on energy" for i in range(600)]
    monkeypatch.setattr("sys.stderr", Terminal())
    stats = store.add(texts, show_progress=True)
    assert ENCODE_SLICE == 256 and counting.document_calls == [256, 256, 88] and stats.added == 600
    assert "600/600" in sys.stderr.getvalue()
    assert store.add(texts, show_progress=True).unchanged == 600 and counting.document_calls == [256, 256, 88]

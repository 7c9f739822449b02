"""Ingest regressions (issue 17, classes 4-6 and 8) on a real embedded Chroma: one bad record never costs the
others, a re-indexed document replaces all its chunks, metadata follows the documented type policy so ``where``
filters match, and repeated ids are settled the same way on every run."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pytest

from reasonir_rag.index.chunking import chunk_documents
from reasonir_rag.index.loaders import load_documents
from reasonir_rag.index.metadata import FORMAT_KEY
from reasonir_rag.index.records import HASH_KEY, FirstSeen, SourcedDocument, text_hash
from reasonir_rag.index.store import ChromaStore
from reasonir_rag.types import Document

GOOD = [
    "Catalase breaks hydrogen peroxide into water and oxygen.",
    "A lever multiplies force at the cost of distance moved.",
    "Osmosis moves water across a membrane toward higher solute concentration.",
    "The photoelectric effect showed that light arrives in quanta.",
]


def _store(tmp_path, encoder, name="ingest") -> ChromaStore:
    return ChromaStore(name, encoder=encoder, path=tmp_path / "chroma")


@pytest.mark.parametrize(("metadata", "reason"), [
    ({"": "blank key"}, "metadata key '' is empty"),
    ({"$where": 1}, "starts with '$'"),
    ({"chroma:origin": "x"}, "starts with 'chroma:'"),
    ({"score": float("-inf")}, "NaN and infinite"),
    ({"weights": [0.5, float("nan")]}, "NaN and infinite"),
    ({"nested": {"deep": float("nan")}}, "NaN or infinite"),
    ({"author": "Mar\udc81a"}, "lone surrogate"),
    ({7: "int key"}, "is a int, not a string"),
    ({"handle": object()}, "value of type object"),
])
def test_one_bad_metadata_rejects_only_its_record(tmp_path, counting, metadata, reason, caplog):
    store = _store(tmp_path, counting)
    metadatas = [{"n": 0}, metadata, {"n": 2}, {"n": 3}]
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.index.store"):
        stats = store.add(GOOD, ids=["g0", "bad", "g2", "g3"], metadatas=metadatas)
    assert stats.ids == ["g0", "g2", "g3"] and store.count() == 3 and stats.invalid == 1
    [rejected] = stats.rejected
    assert rejected.id == "bad" and reason in rejected.reason, rejected
    assert "rejected 1 record(s)" in caplog.text and "bad: " in caplog.text
    assert counting.documents_encoded == 3  # the rejected record cost no model time


def test_lone_surrogates_in_ids_and_texts_reject_only_those_records(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    stats = store.add(["fine one", "text with \ud83d half an emoji", "fine two", "fine three"],
                      ids=["ok-1", "ok-2", "ok-3", "id-\udfff"])
    assert stats.ids == ["ok-1", "ok-3"] and store.count() == 2
    assert [(r.id, "lone surrogate" in r.reason) for r in stats.rejected] == [("ok-2", True), ("id-\\udfff", True)]


def test_a_rejected_jsonl_record_is_named_by_file_and_line(tmp_path, tiny_encoder):
    lines = [
        json.dumps({"id": "a", "text": GOOD[0], "year": 2001}),
        json.dumps({"id": "b", "text": GOOD[1], "$set": "x"}),
        '{"id": "c", "text": "broken surrogate \\udc00 here"}',
        json.dumps({"id": "d", "text": GOOD[3], "ratio": 0.25}),
    ]
    (tmp_path / "books.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs = list(load_documents(tmp_path / "books.jsonl"))
    assert [d.origin for d in docs if isinstance(d, SourcedDocument)] == [f"books.jsonl:{n}" for n in (1, 2, 3, 4)]
    stats = _store(tmp_path, tiny_encoder).add(chunk_documents(docs, chunk_tokens=64, overlap=8))
    assert stats.ids == ["a#0", "d#0"]
    assert [(r.id, r.origin) for r in stats.rejected] == [("b#0", "books.jsonl:2"), ("c#0", "books.jsonl:3")]
    assert "books.jsonl:2" in str(stats.rejected[0]) and "'$set'" in str(stats.rejected[0])


def test_metadata_type_policy_makes_where_filters_match(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    when = dt.datetime(2024, 5, 17, 9, 30, tzinfo=dt.timezone.utc)
    meta = {
        "year": np.int64(1998), "weight": np.float32(0.75), "peer_reviewed": np.bool_(True),
        "tags": ("enzyme", "kinetics"), "pages": np.array([12, 13, 14]), "published": when,
        "day": dt.date(2024, 5, 17), "mixed": [1, "one"], "empty": [], "gone": None, "extra": {"k": [1, 2]},
    }
    store.add([GOOD[0], GOOD[1]], ids=["typed", "other"], metadatas=[meta, {"year": 2005, "tags": ["lever"]}])
    stored = store.get(["typed"])[0].metadata
    assert stored == {
        "year": 1998, "weight": 0.75, "peer_reviewed": True, "tags": ["enzyme", "kinetics"], "pages": [12, 13, 14],
        "published": "2024-05-17T09:30:00+00:00", "day": "2024-05-17", "mixed": '[1, "one"]',
        "extra": '{"k": [1, 2]}',
    }
    assert type(stored["year"]) is int and type(stored["peer_reviewed"]) is bool

    def found(where):
        return sorted(h.id for h in store.search("enzyme", k=5, where=where))

    assert found({"year": 1998}) == ["typed"] and found({"peer_reviewed": True}) == ["typed"]
    assert found({"tags": {"$contains": "lever"}}) == ["other"] and found({"pages": {"$contains": 13}}) == ["typed"]
    assert found({"published": "2024-05-17T09:30:00+00:00"}) == ["typed"]


def test_old_json_string_lists_are_read_back_and_rewritten_as_native_lists(tmp_path, counting):
    store = _store(tmp_path, counting)
    vector = counting.encode_documents([GOOD[2]])
    old_meta = {"tags": '["osmosis", "membrane"]', "title": "[draft]", HASH_KEY: text_hash(GOOD[2])}
    store._collection.add(ids=["legacy"], embeddings=vector, documents=[GOOD[2]], metadatas=[old_meta])  # as before
    assert store.get(["legacy"])[0].metadata == {"tags": ["osmosis", "membrane"], "title": "[draft]"}
    assert store.search("water", k=1, where={"tags": {"$contains": "osmosis"}}) == []  # a JSON string: no match
    stats = store.add([GOOD[2]], ids=["legacy"], metadatas=[{"tags": ["osmosis", "membrane"], "title": "[draft]"}])
    assert stats.metadata_updated == 1 and counting.documents_encoded == 1  # rewritten without encoding
    raw = store._collection.get(ids=["legacy"])["metadatas"][0]
    assert raw["tags"] == ["osmosis", "membrane"] and FORMAT_KEY in raw
    assert [h.id for h in store.search("water", k=1, where={"tags": {"$contains": "osmosis"}})] == ["legacy"]


def _chunks(doc_id, text, encoder):
    return chunk_documents([Document(doc_id, text, {"book": "Notes"})], tokenizer=encoder.tokenizer,
                           chunk_tokens=24, overlap=0)


def test_reindexing_a_shorter_document_deletes_its_trailing_chunks(tmp_path, tiny_encoder):
    store = _store(tmp_path, tiny_encoder)
    long_text = " ".join(GOOD * 4)
    first = store.add(_chunks("notes.md", long_text, tiny_encoder) + _chunks("keep.md", GOOD[3], tiny_encoder))
    before = [i for i in first.ids if i.startswith("notes.md#")]
    assert len(before) >= 3
    edited = _chunks("notes.md", GOOD[0], tiny_encoder)  # the edited file: one chunk
    stats = store.add(edited)
    assert [d.id for d in edited] == ["notes.md#0"]
    assert sorted(stats.removed_ids) == sorted(before[1:]) and stats.removed == len(before) - 1
    assert store.get(before[1:]) == [] and store.get(["notes.md#0"])[0].text == GOOD[0]
    assert store.get(["keep.md#0"])  # another document's chunks are untouched
    assert store.count() == 2
    assert store.add(edited).removed == 0  # nothing more to remove


def test_first_seen_settles_repeats_across_groups_and_reruns_encode_nothing(tmp_path, counting):
    store = _store(tmp_path, counting)
    stream = [Document("x", GOOD[0]), Document("y", GOOD[1]), Document("x", GOOD[2]), Document("z", GOOD[3])]
    for run in range(2):
        first = FirstSeen()
        kept = list(first(stream))
        for group in (kept[:2], kept[2:]):  # as the CLI adds group by group
            store.add(group)
        assert first.repeated == ["x"]
        assert counting.documents_encoded == 3, run
    assert store.get(["x"])[0].text == GOOD[0] and store.count() == 3


def test_a_rejected_occurrence_does_not_take_its_id_across_groups(tmp_path, tiny_encoder):
    """As inside one add(): when the first occurrence of an id is rejected, the next valid one is stored."""
    store = _store(tmp_path, tiny_encoder)
    stream = [Document("p", GOOD[0], {"$bad": 1}), Document("q", GOOD[1]), Document("p", GOOD[2]),
              Document("p", GOOD[3])]
    first = FirstSeen()
    kept = list(first(stream))
    stats = [store.add(group) for group in (kept[:2], kept[2:])]
    assert [r.id for r in stats[0].rejected] == ["p"] and first.repeated == ["p"]
    assert store.get(["p"])[0].text == GOOD[2] and store.count() == 2

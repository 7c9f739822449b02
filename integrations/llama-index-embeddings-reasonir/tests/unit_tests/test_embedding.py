"""ReasonIREmbedding: the prefix on each side, real batching, async off the event loop, never pickling weights."""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from reasonir_rag.encoding.encoder import ReasonIREncoder, shared_encoder
from reasonir_rag.errors import InvalidInputError

from llama_index.embeddings.reasonir import ReasonIREmbedding

QUESTION = "Why do leaves change colour in autumn?"
PASSAGE = "Chlorophyll breaks down in autumn, revealing carotenoid pigments in the leaf."
BIOLOGY_PREFIX = "<|user|>\nGiven a biology post, retrieve relevant passages that help answer the post\n<|embed|>\n"


class CountingEncoder(ReasonIREncoder):
    """The real encoder (same loaded backbones), recording how often the adapter calls it and with how many texts."""

    def __init__(self, base: ReasonIREncoder):
        super().__init__(base._backbones, base.config)
        self.document_calls: list[int] = []

    def encode_documents(self, texts, **kwargs):
        self.document_calls.append(len(texts))
        return super().encode_documents(texts, **kwargs)


@pytest.fixture
def counting(tiny_encoder) -> CountingEncoder:
    return CountingEncoder(tiny_encoder)


def test_is_a_llamaindex_embedding(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder)
    assert isinstance(emb, BaseEmbedding)
    assert emb.class_name() == "ReasonIREmbedding"
    assert emb.model_name == tiny_encoder.config.name


def test_queries_get_the_task_instruction_prefix_and_texts_the_document_prefix(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    assert emb.query_prefix == BIOLOGY_PREFIX
    assert emb.document_prefix == "<|embed|>\n"
    query = np.asarray(emb.get_query_embedding(QUESTION))
    text = np.asarray(emb.get_text_embedding(PASSAGE))
    # the same strings encoded with explicit prefixes by the core
    as_query = tiny_encoder.encode([QUESTION], prefix=BIOLOGY_PREFIX)[0]
    as_doc = tiny_encoder.encode([QUESTION], prefix="<|embed|>\n")[0]
    generic = tiny_encoder.encode_queries([QUESTION])[0]
    np.testing.assert_allclose(query, as_query, atol=1e-6)
    assert np.abs(query - as_doc).max() > 1e-3 and np.abs(query - generic).max() > 1e-3
    np.testing.assert_allclose(text, tiny_encoder.encode([PASSAGE], prefix="<|embed|>\n")[0], atol=1e-6)
    assert np.abs(text - tiny_encoder.encode([PASSAGE], prefix=BIOLOGY_PREFIX)[0]).max() > 1e-3
    batch = np.asarray(emb.get_text_embedding_batch([PASSAGE, QUESTION]))
    np.testing.assert_allclose(batch[1], as_doc, atol=1e-6)


def test_instruction_instead_of_task(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder, instruction="Retrieve textbook passages")
    assert emb.query_prefix == "<|user|>\nRetrieve textbook passages\n<|embed|>\n"
    np.testing.assert_allclose(emb.get_query_embedding(QUESTION),
                               tiny_encoder.encode([QUESTION], prefix=emb.query_prefix)[0], atol=1e-6)


def test_batches_go_to_the_core_whole_not_one_call_per_text(counting):
    texts = [f"passage {i} " + "about cells " * (i % 9 + 1) for i in range(30)]
    emb = ReasonIREmbedding(encoder=counting)
    out = np.asarray(emb.get_text_embedding_batch(texts))
    assert counting.document_calls == [30]
    small = ReasonIREmbedding(encoder=counting, embed_batch_size=7)
    counting.document_calls.clear()
    again = np.asarray(small.get_text_embedding_batch(texts))
    assert counting.document_calls == [7, 7, 7, 7, 2]
    one_by_one = np.asarray([emb.get_text_embedding(t) for t in texts[:5]])
    np.testing.assert_allclose(out, again, atol=1e-5)
    np.testing.assert_allclose(out[:5], one_by_one, atol=1e-5)  # order kept through the core's length sort


def test_async_matches_sync_and_leaves_the_event_loop_free(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    texts = [f"document {i}: " + "mitochondria make ATP " * (i % 12 + 4) for i in range(150)]

    async def run():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        vectors = await emb.aget_text_embedding_batch(texts)
        query = await emb.aget_query_embedding(QUESTION)
        done.set()
        await task
        return vectors, query, ticks

    vectors, query, ticks = asyncio.run(run())
    assert ticks > 10, "the event loop was blocked while the model ran"
    np.testing.assert_allclose(vectors, emb.get_text_embedding_batch(texts), atol=1e-5)
    np.testing.assert_allclose(query, emb.get_query_embedding(QUESTION), atol=1e-6)


def test_pickling_never_carries_the_weights_and_reuses_the_loaded_encoder(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder, task="biology")
    data = pickle.dumps(emb)
    assert len(data) < 20_000  # the spec, not the model
    back = pickle.loads(data)
    assert back.encoder is tiny_encoder  # same process: the very same weights
    assert (back.task, back.model_name) == ("biology", emb.model_name)
    np.testing.assert_allclose(back.get_query_embedding(QUESTION), emb.get_query_embedding(QUESTION))
    assert copy.deepcopy(emb).encoder is tiny_encoder
    assert emb.model_copy(deep=True).encoder is tiny_encoder


def test_the_reload_spec_of_a_given_encoder(minilm_encoder, tiny_encoder):
    assert ReasonIREmbedding(encoder=minilm_encoder).model_name == "minilm"  # the packaged MiniLM, no hub id
    emb = ReasonIREmbedding(encoder=tiny_encoder)
    assert (emb.model_name, emb.model_kwargs) == (str(tiny_encoder.config.name), {})


def test_json_round_trip_loads_through_the_shared_encoder(tiny_reasonir_dir, tiny_encoder):
    emb = ReasonIREmbedding(str(tiny_reasonir_dir), task="biology")
    shared = shared_encoder(str(tiny_reasonir_dir))
    assert emb.encoder is shared
    payload = emb.to_json()
    assert len(payload) < 2_000 and "biology" in payload
    back = ReasonIREmbedding.from_json(payload)
    assert back.encoder is shared and back.task == "biology"
    np.testing.assert_allclose(back.get_query_embedding(QUESTION), tiny_encoder.encode_queries(
        [QUESTION], task="biology")[0], atol=1e-6)


# ------------------------------------------------------------------ bad input: the core's cases, through LlamaIndex
@pytest.mark.parametrize("bad, fragment", [
    (["ok", ""], "#1 is empty"),
    (["ok", "   \n\t"], "#1 is empty or whitespace"),
    (["ok", None], "#1 is NoneType"),
    ([3, "ok"], "#0 is int"),
])
def test_bad_items_are_named(counting, bad, fragment):
    emb = ReasonIREmbedding(encoder=counting)
    with pytest.raises(InvalidInputError, match=fragment):
        emb.get_text_embedding_batch(bad)
    with pytest.raises(InvalidInputError, match=fragment):
        asyncio.run(emb.aget_text_embedding_batch(bad))
    assert counting.document_calls == []


def test_every_bad_item_is_named_before_any_model_work_even_across_chunks(counting):
    emb = ReasonIREmbedding(encoder=counting, embed_batch_size=2)
    with pytest.raises(InvalidInputError, match=r"3 of 6 texts") as info:
        emb.get_text_embedding_batch(["fine", "also fine", "", "ok", None, " "])
    assert all(f"#{i}" in str(info.value) for i in (2, 4, 5))
    assert counting.document_calls == []  # the first chunks were not encoded either


def test_bad_single_inputs(tiny_encoder):
    emb = ReasonIREmbedding(encoder=tiny_encoder)
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        emb.get_query_embedding("")
    with pytest.raises(InvalidInputError, match="#0 is empty or whitespace"):
        asyncio.run(emb.aget_query_embedding("  "))
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        emb.get_text_embedding("")
    with pytest.raises(TypeError, match="got None"):
        emb.get_text_embedding_batch(None)


def test_lone_surrogates_are_replaced_and_logged(tiny_encoder, caplog):
    emb = ReasonIREmbedding(encoder=tiny_encoder)
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.encoder"):
        out = emb.get_text_embedding_batch(["broken \ud800 text", "fine"])
    assert len(out) == 2 and all(np.isfinite(v).all() for v in out)
    assert any("lone surrogates" in r.getMessage() for r in caplog.records)


def test_too_long_text_is_truncated_and_logged(tiny_encoder, caplog):
    emb = ReasonIREmbedding(encoder=tiny_encoder)
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.encoder"):
        out = emb.get_text_embedding_batch(["short one", "word " * 5000])
    assert len(out) == 2 and np.isfinite(out[1]).all()
    assert any("truncated 1 of 2" in r.getMessage() for r in caplog.records)


def test_bad_settings_fail_at_construction(tiny_encoder):
    with pytest.raises(ValueError, match=r"unknown BRIGHT task 'chemistry'.*biology"):
        ReasonIREmbedding(encoder=tiny_encoder, task="chemistry")
    with pytest.raises(ValueError, match="not both"):
        ReasonIREmbedding(encoder=tiny_encoder, task="biology", instruction="x")
    with pytest.raises(TypeError, match="ReasonIREncoder"):
        ReasonIREmbedding(encoder="reasonir/ReasonIR-8B")
    with pytest.raises(ValueError):
        ReasonIREmbedding(encoder=tiny_encoder, embed_batch_size=0)


def test_an_unknown_task_fails_before_any_weights_load(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=r"unknown BRIGHT task 'chemistry'"):
        ReasonIREmbedding(str(missing), task="chemistry")
    with pytest.raises(OSError, match="no-such-model"):  # the same call with a valid task reaches the loader
        ReasonIREmbedding(str(missing), task="biology")

"""ReasonIREmbeddings: the right prefix on each side, instructions, shared weights, pickling, a free event loop."""

from __future__ import annotations

import asyncio
import pickle
import time

import numpy as np
import pytest
from pydantic import ValidationError

from langchain_reasonir import ReasonIREmbeddings

DOCS = ["Mitochondria make ATP.", "Sound is faster in warm air."]


def test_documents_and_queries_get_their_own_prefix(tiny_encoder):
    emb = ReasonIREmbeddings(encoder=tiny_encoder)
    docs = np.asarray(emb.embed_documents(DOCS))
    query = np.asarray(emb.embed_query(DOCS[0]))
    np.testing.assert_allclose(docs, tiny_encoder.encode_documents(DOCS), atol=1e-6)
    np.testing.assert_allclose(query, tiny_encoder.encode_queries([DOCS[0]])[0], atol=1e-6)
    assert np.abs(query - docs[0]).max() > 1e-3  # same text, other prefix: another vector
    assert isinstance(emb.embed_documents(DOCS)[0][0], float) and len(query) == tiny_encoder.dim


def test_task_and_instruction_defaults_and_per_call_overrides(tiny_encoder):
    q = "why do leaves change colour"
    biology = tiny_encoder.encode_queries([q], task="biology")[0]
    custom = tiny_encoder.encode_queries([q], instruction="Find passages about plants")[0]
    plain = tiny_encoder.encode_queries([q])[0]
    emb = ReasonIREmbeddings(encoder=tiny_encoder, task="biology")
    np.testing.assert_allclose(emb.embed_query(q), biology, atol=1e-6)
    np.testing.assert_allclose(emb.embed_query(q, instruction="Find passages about plants"), custom, atol=1e-6)
    np.testing.assert_allclose(ReasonIREmbeddings(encoder=tiny_encoder).embed_query(q), plain, atol=1e-6)
    emb2 = ReasonIREmbeddings(encoder=tiny_encoder, instruction="Find passages about plants")
    np.testing.assert_allclose(emb2.embed_query(q), custom, atol=1e-6)
    np.testing.assert_allclose(emb2.embed_query(q, task="biology"), biology, atol=1e-6)
    assert np.abs(biology - plain).max() > 1e-4
    # documents never take an instruction
    np.testing.assert_allclose(emb.embed_documents([q]), tiny_encoder.encode_documents([q]), atol=1e-6)


@pytest.mark.asyncio
async def test_async_matches_sync_and_leaves_the_loop_free(tiny_encoder):
    emb = ReasonIREmbeddings(encoder=tiny_encoder, task="biology")
    np.testing.assert_allclose(await emb.aembed_query("q one"), emb.embed_query("q one"), atol=1e-6)
    np.testing.assert_allclose(await emb.aembed_documents(DOCS), emb.embed_documents(DOCS), atol=1e-6)
    texts = [f"passage number {i} about the heat capacity of water and ice " * 12 for i in range(300)]
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    vectors = await emb.aembed_documents(texts)
    end = time.perf_counter()
    task.cancel()
    assert len(vectors) == 300 and end - start > 0.05
    during = [t for t in ticks if start < t < end]
    assert len(during) >= 3, f"the event loop ran only {len(during)} times in {end - start:.2f}s of encoding"


def test_built_encoders_are_shared_and_pickling_reuses_them(tiny_reasonir_dir):
    a = ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), device="cpu")
    b = ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), device="cpu", task="aops")
    assert a.encoder is b.encoder
    copy = pickle.loads(pickle.dumps(b))
    assert copy.encoder is b.encoder and copy.task == "aops"
    assert copy.embed_query("x") == b.embed_query("x")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ReasonIREmbeddings(encoder=a.encoder))


def test_model_kwargs_reach_the_core(tiny_reasonir_dir):
    emb = ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), device="cpu", model_kwargs={"max_length": 16})
    assert emb.encoder.config.max_length == 16
    emb.embed_documents(["word " * 100])  # truncated by the core, not an error


def test_constructor_errors(tiny_encoder, tiny_reasonir_dir):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ReasonIREmbeddings(encoder=tiny_encoder, model="x")
    with pytest.raises(ValidationError, match="not both"):
        ReasonIREmbeddings(encoder=tiny_encoder, device="cpu")
    with pytest.raises(TypeError, match="lacks encode_queries"):
        ReasonIREmbeddings(encoder=object())
    with pytest.raises(ValidationError, match="not both"):  # a loading setting: it cannot reach a loaded encoder
        ReasonIREmbeddings(encoder=tiny_encoder, encode_kwargs={"batch_size": 8})
    with pytest.raises(ValidationError, match="unknown BRIGHT task 'chem'"):
        ReasonIREmbeddings(encoder=tiny_encoder, task="chem")
    with pytest.raises(ValidationError, match="not both"):
        ReasonIREmbeddings(encoder=tiny_encoder, task="biology", instruction="x")
    with pytest.raises(ValueError, match="unknown preset"):
        ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), preset="nope")
    emb = ReasonIREmbeddings(encoder=tiny_encoder, encode_kwargs={"show_progress": False})
    assert len(emb.embed_documents(DOCS)) == 2

"""HuggingFaceEmbedding's habits on ReasonIREmbedding: honoured (the vectors or the loaded encoder show it) or
refused by name, never silently ignored; a setting that does nothing for the preset is logged once."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from llama_index.embeddings.reasonir import ReasonIREmbedding

Q = "why do leaves change colour"


def test_huggingface_arguments_are_honoured(tiny_reasonir_dir, tiny_encoder):
    emb = ReasonIREmbedding(str(tiny_reasonir_dir), device="cpu", query_instruction="Find plants", max_length=64,
                            batch_size=16, normalize=True, trust_remote_code=False)
    assert emb.instruction == "Find plants" and emb.encoder.config.max_length == 64
    assert emb.model_kwargs == {"device": "cpu", "max_length": 64, "batch_size": 16, "trust_remote_code": False}
    assert emb.encoder._runner.batch_size == 16
    np.testing.assert_allclose(emb.get_query_embedding(Q),
                               tiny_encoder.encode_queries([Q], instruction="Find plants")[0], atol=1e-5)


def test_preset_is_a_loading_argument_as_in_langchain(minilm_encoder, tiny_encoder):
    emb = ReasonIREmbedding(preset="minilm", device="cpu")  # LangChain: ReasonIREmbeddings(preset="minilm")
    assert (emb.model_name, emb.model_kwargs) == ("minilm", {"preset": "minilm", "device": "cpu"})
    np.testing.assert_allclose(emb.get_query_embedding(Q), minilm_encoder.encode_queries([Q])[0], atol=1e-5)
    with pytest.raises(ValueError, match="both as arguments and in model_kwargs"):
        ReasonIREmbedding(preset="minilm", model_kwargs={"preset": "reasonir"})
    with pytest.raises(ValueError, match=r"either encoder=.*\['preset'\]"):
        ReasonIREmbedding(encoder=tiny_encoder, preset="minilm")


def test_text_instruction_is_the_document_prefix(tiny_reasonir_dir, tiny_encoder):
    emb = ReasonIREmbedding(str(tiny_reasonir_dir), text_instruction="", model_kwargs={"device": "cpu"})
    assert emb.document_prefix == ""
    got = np.asarray(emb.get_text_embedding(Q))
    assert np.abs(got - tiny_encoder.encode_documents([Q])[0]).max() > 1e-4  # another prefix: another vector


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({"normalize": False}, ValueError, "normalize=False"),
    ({"cache_folder": "/tmp/x"}, ValueError, "cache_folder"),
    ({"embed_batchsize": 8}, TypeError, "embed_batchsize"),
    ({"load_kwargs": {"device": "cpu"}}, TypeError, "load_kwargs"),
    ({"device": "cpu", "model_kwargs": {"device": "cuda"}}, ValueError, "both as arguments and in model_kwargs"),
])
def test_impossible_or_unknown_arguments_are_refused_by_name(tiny_reasonir_dir, kwargs, error, named):
    with pytest.raises(error, match=named):
        ReasonIREmbedding(str(tiny_reasonir_dir), **kwargs)


def test_loading_settings_with_a_loaded_encoder_are_refused(tiny_encoder):
    with pytest.raises(ValueError, match=r"either encoder=.*\['device'\]"):
        ReasonIREmbedding(encoder=tiny_encoder, device="cpu")


def test_a_task_without_effect_on_minilm_is_logged_once(minilm_encoder, caplog):
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.habits"):
        for _ in range(2):
            ReasonIREmbedding(encoder=minilm_encoder, instruction="Find plants")
    said = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert len(said) == 1 and "instruction='Find plants'" in said[0]

"""HuggingFaceEmbeddings' habits on ReasonIREmbeddings: honoured (the vectors or the loaded encoder show it) or
refused by name; a setting that does nothing for the preset is logged once."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pydantic import ValidationError

from langchain_reasonir import ReasonIREmbeddings

Q = "why do leaves change colour"


def test_device_in_model_kwargs_and_encode_kwargs_of_huggingface(tiny_reasonir_dir, tiny_encoder):
    emb = ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), model_kwargs={"device": "cpu"},
                             encode_kwargs={"normalize_embeddings": True, "batch_size": 16, "show_progress": False})
    assert emb.device == "cpu" and emb.model_kwargs == {"batch_size": 16}
    assert emb.encoder._runner.batch_size == 16  # type: ignore[union-attr]
    np.testing.assert_allclose(emb.embed_documents([Q]), tiny_encoder.encode_documents([Q]), atol=1e-5)
    with pytest.raises(ValueError, match="differ"):
        ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), device="cpu", model_kwargs={"device": "cuda"})


def test_query_instruction_and_max_length_are_honoured(tiny_reasonir_dir, tiny_encoder):
    emb = ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), device="cpu", query_instruction="Find plants",
                             max_length=64)
    assert emb.instruction == "Find plants" and emb.encoder.config.max_length == 64  # type: ignore[union-attr]
    np.testing.assert_allclose(emb.embed_query(Q), tiny_encoder.encode_queries([Q], instruction="Find plants")[0],
                               atol=1e-5)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"encode_kwargs": {"normalize_embeddings": False}}, "normalize_embeddings=False"),
    ({"cache_folder": "/tmp/x"}, "cache_folder"),
    ({"multi_process": True}, "multi_process"),
])
def test_impossible_habits_are_refused_by_name(tiny_reasonir_dir, kwargs, named):
    with pytest.raises(ValueError, match=named):  # pydantic carries the core's InvalidInputError
        ReasonIREmbeddings(model_name=str(tiny_reasonir_dir), **kwargs)


def test_unknown_arguments_raise_naming_them(tiny_encoder):
    with pytest.raises(ValidationError, match="embed_batchsize"):
        ReasonIREmbeddings(encoder=tiny_encoder, embed_batchsize=8)
    with pytest.raises(ValueError, match=r"prompt_name.*are not accepted by encode_"):
        ReasonIREmbeddings(encoder=tiny_encoder, encode_kwargs={"prompt_name": "query"})
    with pytest.raises(ValueError, match="either encoder="):
        ReasonIREmbeddings(encoder=tiny_encoder, max_length=64)  # it could not reach a loaded encoder


def test_a_task_without_effect_on_minilm_is_logged_once(minilm_encoder, caplog):
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.habits"):
        ReasonIREmbeddings(encoder=minilm_encoder, task="biology")
        ReasonIREmbeddings(encoder=minilm_encoder, task="biology")
        ReasonIREmbeddings(encoder=minilm_encoder)
    said = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert len(said) == 1 and "task='biology'" in said[0]

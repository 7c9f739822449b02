"""Bad input gets a clear error before any model work, or a documented, logged handling."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from reasonir_rag.encoding.instructions import BRIGHT_TASKS, bright_instruction, resolve_task
from reasonir_rag.errors import InvalidInputError


def test_empty_list_gives_an_empty_matrix(tiny_encoder):
    out = tiny_encoder.encode_documents([])
    assert out.shape == (0, tiny_encoder.dim) and out.dtype == np.float32


@pytest.mark.parametrize("bad, fragment", [
    (["ok", ""], "#1 is empty"),
    (["ok", "   \n\t"], "#1 is empty or whitespace"),
    (["ok", None], "#1 is NoneType"),
    ([3, "ok"], "#0 is int"),
])
def test_bad_items_are_named(tiny_encoder, bad, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        tiny_encoder.encode_documents(bad)


def test_none_instead_of_a_list(tiny_encoder):
    with pytest.raises(TypeError, match="got None"):
        tiny_encoder.encode_queries(None)


def test_all_bad_items_are_listed_at_once(tiny_encoder):
    with pytest.raises(ValueError, match=r"3 of 4 documents") as info:
        tiny_encoder.encode_documents(["", "fine", None, " "])
    assert "#0" in str(info.value) and "#2" in str(info.value) and "#3" in str(info.value)


def test_a_single_string_is_one_input(tiny_encoder):
    assert tiny_encoder.encode_queries("what is entropy?").shape == (1, tiny_encoder.dim)


def test_huge_document_is_truncated_and_logged(tiny_encoder, caplog):
    huge = "word " * 200_000  # 1M characters
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.encoder"):
        out = tiny_encoder.encode_documents(["short one", huge])
    assert out.shape == (2, tiny_encoder.dim)
    assert np.isfinite(out).all()
    assert any("truncated 1 of 2" in r.getMessage() for r in caplog.records)
    rows, _ = tiny_encoder._rows([huge], tiny_encoder.document_prefix, "documents")
    assert len(rows[0]) == tiny_encoder.config.max_length
    # the prefix survives truncation: the row starts with BOS + the document prefix's tokens
    prefix_ids = tiny_encoder.tokenizer(tiny_encoder.document_prefix)["input_ids"]
    assert rows[0][: len(prefix_ids)] == prefix_ids


def test_lone_surrogates_are_replaced_and_logged(tiny_encoder, caplog):
    with caplog.at_level(logging.WARNING, logger="reasonir_rag.encoding.encoder"):
        out = tiny_encoder.encode_documents(["broken \ud800 text", "fine"])
    assert out.shape == (2, tiny_encoder.dim)
    assert any("lone surrogates" in r.getMessage() for r in caplog.records)


def test_unknown_task_lists_the_known_ones(tiny_encoder):
    with pytest.raises(ValueError, match=r"unknown BRIGHT task 'chemistry'.*biology"):
        tiny_encoder.encode_queries(["q"], task="chemistry")
    with pytest.raises(ValueError, match="not both"):
        tiny_encoder.encode_queries(["q"], task="biology", instruction="x")


def test_every_bright_task_has_an_instruction():
    assert len(BRIGHT_TASKS) == 12
    for task in BRIGHT_TASKS:
        assert resolve_task(task) == bright_instruction(task)
    assert bright_instruction("biology") == "Given a biology post, retrieve relevant passages that help answer the post"
    assert resolve_task("biology:long").endswith("retrieve relevant documents that help answer the post")
    assert "Math problem" in bright_instruction("aops")
    with pytest.raises(ValueError, match="long-document"):
        bright_instruction("aops", long_documents=True)


def test_task_instruction_changes_the_query_embedding(tiny_encoder):
    a = tiny_encoder.encode_queries(["why do leaves change colour"], task="biology")
    b = tiny_encoder.encode_queries(["why do leaves change colour"], task="aops")
    assert np.abs(a - b).max() > 1e-4


def test_query_prefix_is_reasonirs(tiny_encoder):
    assert tiny_encoder.query_prefix(task="pony") == (
        "<|user|>\nGiven a pony question, retrieve relevant passages that help answer the question\n<|embed|>\n")
    assert tiny_encoder.document_prefix == "<|embed|>\n"

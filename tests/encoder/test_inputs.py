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
    ({"first text": 1, "second": 2}, "must be a list of strings, got dict"),  # not silently its keys
    ({"a text"}, "got set"),  # no order: rows could not be matched to inputs
    (42, "got int"),
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



@pytest.mark.parametrize("name", ["tiny_encoder", "minilm_encoder"])
def test_a_huge_text_is_never_tokenized_whole_and_gives_the_rows_of_the_whole(name, request, monkeypatch):
    """A 3 MB document: the tokenizer only ever sees a bounded start of it, and the row is the one the whole
    text gives once cut (GritLM's joint tokenization for ReasonIR, prefix ids + text ids for MiniLM)."""
    encoder = request.getfixturevalue(name)
    sentences = ["Mitochondria have 2 membranes; ATP-synthase  spins (about 100 rev/s).", "Ça va? 東京 — naïve café.",
                 "def f(x):\n    return x ** 2  # square", "   spaced    out   words\t\ttabs"]
    huge = "\n".join(sentences[i % 4] + f" #{i}" for i in range(60_000))
    assert len(huge) > 2_500_000
    prefix, limit = encoder.document_prefix, encoder.config.max_length
    tokenizer = encoder.tokenizer
    if encoder.config.joint_tokens:
        whole = tokenizer(prefix + huge, add_special_tokens=True)["input_ids"]
        tail = encoder._tail
        expected = whole[: limit - len(tail)] + tail
    else:
        head, tail = encoder._head + encoder._prefix_ids(prefix), encoder._tail
        expected = head + tokenizer(huge, add_special_tokens=False)["input_ids"][: encoder.text_budget(prefix)] + tail
    seen: list[int] = []

    def recording(text, **kwargs):  # the real tokenizer, noting how much text each call is given
        seen.extend(len(t) for t in ([text] if isinstance(text, str) else text))
        return tokenizer(text, **kwargs)

    monkeypatch.setattr(encoder._backbones[0], "tokenizer", recording)
    rows, _ = encoder._rows([huge], prefix, "documents")
    assert rows[0] == expected
    assert max(seen) <= 4 * 8 * (limit + 8) < len(huge) // 10  # a window of the text, never the whole of it


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

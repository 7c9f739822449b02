"""Where the encoder carries ReasonIR's or GritLM's name it reproduces them exactly: BRIGHT's instruction strings,
GritLM's joint tokenization of ``instruction + text``, the empty instruction, truncation of the text only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reasonir_rag import ReasonIREncoder
from reasonir_rag.encoding.instructions import (
    BRIGHT_TASKS,
    DOCUMENT_PREFIX,
    bright_instruction,
    query_prefix,
    resolve_task,
)
from reasonir_rag.errors import EncoderMismatchError
from tests.encoder.reference import ReferenceLlama, gritlm_embedding

# ReasonIR's evaluation/bright configs, copied as literals (the raw task id fills the template).
SHORT = {
    "biology": "Given a biology post, retrieve relevant passages that help answer the post",
    "earth_science": "Given a earth_science post, retrieve relevant passages that help answer the post",
    "economics": "Given a economics post, retrieve relevant passages that help answer the post",
    "psychology": "Given a psychology post, retrieve relevant passages that help answer the post",
    "robotics": "Given a robotics post, retrieve relevant passages that help answer the post",
    "stackoverflow": "Given a stackoverflow post, retrieve relevant passages that help answer the post",
    "sustainable_living": "Given a sustainable_living post, retrieve relevant passages that help answer the post",
    "leetcode": "Given a coding problem, retrieve relevant examples that help answer the problem",
    "pony": "Given a pony question, retrieve relevant passages that help answer the question",
    "aops": "Given a Math problem, retrieve relevant examples that help answer the problem",
    "theoremqa_questions": "Given a Math problem, retrieve relevant examples that help answer the problem",
    "theoremqa_theorems": "Given a Math problem, retrieve relevant theorems that help answer the problem",
}
LONG = {
    "biology": "Given a biology post, retrieve relevant documents that help answer the post",
    "earth_science": "Given a earth_science post, retrieve relevant documents that help answer the post",
    "economics": "Given a economics post, retrieve relevant documents that help answer the post",
    "psychology": "Given a psychology post, retrieve relevant documents that help answer the post",
    "robotics": "Given a robotics post, retrieve relevant documents that help answer the post",
    "stackoverflow": "Given a stackoverflow post, retrieve relevant documents that help answer the post",
    "sustainable_living": "Given a sustainable_living post, retrieve relevant documents that help answer the post",
    "pony": "Given a pony question, retrieve relevant documents that help answer the question",
}

# Texts whose first characters can merge with the prefix's last token, and plain ones.
SEAM_TEXTS = [
    "\nText after a newline",
    "\n\nTwo newlines first",
    "\r\nA Windows line",
    "  two spaces first",
    " one space first",
    "...and punctuation first",
    "!? Really?",
    "(parenthesised) start",
    "Why does ice float on water?",
    "def f(x):\n    return x ** 2",
    "naïve café 日本語 🤖",
]
QUERY = query_prefix(SHORT["biology"])  # '<|user|>\n' + instruction + '\n<|embed|>\n'


def test_bright_instructions_are_reasonirs_byte_for_byte():
    assert tuple(SHORT) == BRIGHT_TASKS
    for task, expected in SHORT.items():
        assert bright_instruction(task) == expected
        assert resolve_task(task) == expected and resolve_task(f"{task}:short") == expected
    for task, expected in LONG.items():
        assert bright_instruction(task, long_documents=True) == expected
        assert resolve_task(f"{task}:long") == expected
    for task in set(SHORT) - set(LONG):
        with pytest.raises(ValueError, match="long-document"):
            bright_instruction(task, long_documents=True)


def test_query_prefix_of_a_task_is_reasonirs(tiny_encoder):
    assert tiny_encoder.query_prefix(task="earth_science") == (
        "<|user|>\nGiven a earth_science post, retrieve relevant passages that help answer the post\n<|embed|>\n")
    assert tiny_encoder.query_prefix(task="pony:long") == (
        "<|user|>\nGiven a pony question, retrieve relevant documents that help answer the question\n<|embed|>\n")


def test_empty_instruction_is_no_prefix_and_none_is_the_default(tiny_encoder):
    assert tiny_encoder.query_prefix(instruction="") == ""
    assert query_prefix("") == ""
    default = "<|user|>\nGiven a question, retrieve relevant passages that help answer the question\n<|embed|>\n"
    assert tiny_encoder.query_prefix() == default and tiny_encoder.query_prefix(instruction=None) == default
    rows, ranges = tiny_encoder._rows(["hello world"], "", "queries")
    tok = tiny_encoder.tokenizer
    assert rows[0] == tok("hello world", add_special_tokens=True)["input_ids"]
    assert rows[0][0] == tok.bos_token_id and ranges[0] == (0, len(rows[0]))  # BOS pooled too
    empty = tiny_encoder.encode_queries(["hello world"], instruction="")
    np.testing.assert_allclose(empty, tiny_encoder.encode(["hello world"], prefix=""), atol=1e-6)
    assert np.abs(empty - tiny_encoder.encode_queries(["hello world"])).max() > 1e-4


def test_rows_are_the_joint_tokenization(tiny_encoder):
    tok = tiny_encoder.tokenizer
    for prefix in (QUERY, DOCUMENT_PREFIX, ""):
        rows, ranges = tiny_encoder._rows(SEAM_TEXTS, prefix, "texts")
        n_masked = len(tok(prefix, add_special_tokens=True)["input_ids"]) if prefix else 0
        for text, row, span in zip(SEAM_TEXTS, rows, ranges, strict=True):
            assert row == tok(prefix + text, add_special_tokens=True)["input_ids"]
            assert span == (n_masked, len(row))
    # the seam: '>\n' + '\n' is ONE token '>\n\n' (1363) jointly, two tokens (397, 198) apart
    row = tiny_encoder._rows(["\nText"], DOCUMENT_PREFIX, "documents")[0][0]
    assert 1363 in row and 397 not in row
    assert tok(DOCUMENT_PREFIX, add_special_tokens=False)["input_ids"][-1] == 397


def test_truncation_cuts_the_text_only_and_fits_max_length(tiny_reasonir_dir):
    short = ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", max_length=40)
    tok = short.tokenizer
    texts = ["\n" + "word " * 100, "\r\nanother long text " * 30, " lead " * 50, "short"]
    for prefix in (QUERY[:60] + "\n<|embed|>\n", DOCUMENT_PREFIX, ""):
        rows, ranges = short._rows(texts, prefix, "texts")
        for text, row, (start, end) in zip(texts, rows, ranges, strict=True):
            full = tok(prefix + text, add_special_tokens=True)["input_ids"]
            assert len(row) <= 40 and row == full[:40]  # GritLM's truncation=True, max_length=40
            assert end == len(row) and start < end
    vectors = short.encode_documents([texts[0], texts[0] + " and more past the cut"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


@pytest.fixture(scope="module")
def reference(tiny_reasonir_dir):
    return ReferenceLlama(tiny_reasonir_dir)


@pytest.mark.parametrize("prefix", [QUERY, DOCUMENT_PREFIX, ""], ids=["query", "document", "empty"])
def test_seam_texts_match_the_independent_reference(tiny_encoder, reference, prefix):
    ours = tiny_encoder.encode(SEAM_TEXTS, prefix=prefix)
    expected = []
    for text in SEAM_TEXTS:
        if prefix:
            expected.append(gritlm_embedding(reference, tiny_encoder.tokenizer, prefix, text).numpy())
        else:  # GritLM with instruction="": nothing masked, BOS pooled
            ids = tiny_encoder.tokenizer(text, add_special_tokens=True)["input_ids"]
            expected.append(torch.nn.functional.normalize(reference.hidden(ids).mean(0), dim=-1).float().numpy())
    np.testing.assert_allclose(ours, np.stack(expected), atol=1e-5)


@pytest.fixture(scope="module")
def gritlm_model(tiny_reasonir_dir):
    gritlm = pytest.importorskip("gritlm")
    return gritlm.GritLM(str(tiny_reasonir_dir), mode="embedding", pooling_method="mean", attn="bbcc",
                         device="cpu", torch_dtype=torch.float32)


@pytest.mark.parametrize("attention", ["padded", "packed"])
def test_seam_texts_match_the_gritlm_package(tiny_reasonir_dir, tiny_encoder, gritlm_model, attention):
    encoder = tiny_encoder if attention == "padded" else ReasonIREncoder.from_pretrained(
        str(tiny_reasonir_dir), device="cpu", attention="packed")
    assert encoder.attention == attention
    for prefix in (QUERY, DOCUMENT_PREFIX, ""):
        theirs = gritlm_model.encode(SEAM_TEXTS, instruction=prefix, batch_size=4, max_length=2048)
        np.testing.assert_allclose(encoder.encode(SEAM_TEXTS, prefix=prefix), theirs, atol=1e-5)
    # the public calls: a task's query, the documents, the empty instruction on both sides
    theirs = gritlm_model.encode(SEAM_TEXTS, instruction=QUERY, batch_size=4, max_length=2048)
    np.testing.assert_allclose(encoder.encode_queries(SEAM_TEXTS, task="biology"), theirs, atol=1e-5)
    theirs = gritlm_model.encode(SEAM_TEXTS, instruction=DOCUMENT_PREFIX, batch_size=4, max_length=2048)
    np.testing.assert_allclose(encoder.encode_documents(SEAM_TEXTS), theirs, atol=1e-5)
    theirs = gritlm_model.encode(SEAM_TEXTS, instruction="", batch_size=4, max_length=2048)
    np.testing.assert_allclose(encoder.encode_queries(SEAM_TEXTS, instruction=""), theirs, atol=1e-5)


def test_truncated_texts_match_the_gritlm_package(tiny_reasonir_dir, gritlm_model):
    short = ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", max_length=48)
    texts = ["\nEnzymes lower the activation energy of reactions. " * 20, " spaced " * 80, "fits"]
    for prefix in (QUERY, DOCUMENT_PREFIX, ""):
        theirs = gritlm_model.encode(texts, instruction=prefix, batch_size=3, max_length=48)
        rows, _ = short._rows(texts, prefix, "texts")
        their_rows = gritlm_model.tokenizer([prefix + t for t in texts], truncation=True, max_length=48,
                                            add_special_tokens=True)["input_ids"]
        assert rows == their_rows
        np.testing.assert_allclose(short.encode(texts, prefix=prefix), theirs, atol=1e-5)


def test_documents_without_instruction_match_gritlm_and_change_the_fingerprint(tiny_reasonir_dir, tiny_encoder,
                                                                              gritlm_model, tmp_path):
    bare = ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", document_prefix="")
    assert bare.document_prefix == "" and tiny_encoder.document_prefix == DOCUMENT_PREFIX
    theirs = gritlm_model.encode(SEAM_TEXTS, instruction="", batch_size=4, max_length=2048)
    np.testing.assert_allclose(bare.encode_documents(SEAM_TEXTS), theirs, atol=1e-5)
    assert bare.fingerprint["document_prefix"] == "" and bare.fingerprint != tiny_encoder.fingerprint
    name, kwargs = bare.load_spec()
    assert kwargs["document_prefix"] == ""
    assert ReasonIREncoder.from_pretrained(name, device="cpu", **kwargs).document_prefix == ""
    assert "document_prefix" not in tiny_encoder.load_spec()[1]
    # a store of bare documents refuses the default-prefix encoder
    pytest.importorskip("chromadb")
    from reasonir_rag.index.store import ChromaStore

    store = ChromaStore("bare", encoder=bare, path=str(tmp_path / "chroma"))
    store.add(["\nA document without instruction"], ids=["d1"])
    with pytest.raises(EncoderMismatchError, match="document_prefix"):
        ChromaStore("bare", encoder=tiny_encoder, path=str(tmp_path / "chroma")).search("a question")


def test_cache_keys_tell_joint_rows_and_the_empty_instruction_apart(tiny_reasonir_dir, tmp_path):
    encoder = ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", cache=str(tmp_path / "c"))
    assert '"tokens": "joint"' in encoder._cache_namespace
    first = encoder.encode_queries(["\nhello"], instruction="")
    default = encoder.encode_queries(["\nhello"])
    assert np.abs(first - default).max() > 1e-4
    np.testing.assert_allclose(encoder.encode_queries(["\nhello"], instruction=""), first, atol=0)
    assert len(encoder.cache) == 2

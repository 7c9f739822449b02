"""The encoder computes ReasonIR's embeddings: checked against an independent reference and the gritlm package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reasonir_rag.encoding.instructions import DOCUMENT_PREFIX, bright_instruction, query_prefix
from tests.encoder.reference import ReferenceLlama, gritlm_embedding

TEXTS = [
    "Why does ice float on water?",
    "Enzymes lower the activation energy of a reaction by stabilising the transition state, which speeds it up.",
    "In a closed system the total momentum is conserved; a rocket pushes exhaust backwards and moves forwards. " * 3,
    "def f(x):\n    return x ** 2  # squares",
    "naïve café 日本語 🤖",
]


@pytest.fixture(scope="module")
def reference(tiny_reasonir_dir):
    return ReferenceLlama(tiny_reasonir_dir)


@pytest.mark.parametrize("kind", ["query-task", "query-default", "document"])
def test_matches_independent_reference(tiny_encoder, reference, kind):
    if kind == "query-task":
        prefix = query_prefix(bright_instruction("biology"))
        ours = tiny_encoder.encode_queries(TEXTS, task="biology")
    elif kind == "query-default":
        prefix = tiny_encoder.query_prefix()
        ours = tiny_encoder.encode_queries(TEXTS)
    else:
        prefix = DOCUMENT_PREFIX
        ours = tiny_encoder.encode_documents(TEXTS)
    expected = np.stack([gritlm_embedding(reference, tiny_encoder.tokenizer, prefix, t).numpy() for t in TEXTS])
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), tiny_encoder.dim)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_reference_distinguishes_causal_and_prefix_pooling(tiny_encoder, reference):
    """The reference check above could fail: causal attention or pooling the prefix give other vectors."""
    text, prefix = TEXTS[1], DOCUMENT_PREFIX
    ours = tiny_encoder.encode_documents([text])[0]
    causal = gritlm_embedding(reference, tiny_encoder.tokenizer, prefix, text, causal=True).numpy()
    with_prefix = gritlm_embedding(reference, tiny_encoder.tokenizer, prefix, text, pool_instruction=True).numpy()
    assert np.abs(ours - causal).max() > 1e-3
    assert np.abs(ours - with_prefix).max() > 1e-3


def _first_token_state(encoder, ids: list[list[int]], attention: list[list[int]]) -> torch.Tensor:
    model = encoder._backbones[0].model
    with torch.inference_mode():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(attention)).last_hidden_state
    return out[:, 1]  # first token after BOS


@pytest.mark.parametrize("padded", [False, True])
def test_attention_is_bidirectional(tiny_encoder, padded):
    """Changing the LAST token changes the FIRST token's state, with and without padding in the batch."""
    tok = tiny_encoder.tokenizer
    base = tok("The mitochondria is the powerhouse of the cell")["input_ids"]
    other = [*base[:-1], tok("banana", add_special_tokens=False)["input_ids"][0]]
    rows, masks = [base, other], [[1] * len(base)] * 2
    if padded:
        pad = tok.pad_token_id
        rows = [r + [pad] * 3 for r in rows] + [base[:4] + [pad] * (len(base) - 1)]
        masks = [m + [0] * 3 for m in masks] + [[1] * 4 + [0] * (len(base) - 1)]
    states = _first_token_state(tiny_encoder, rows, masks)
    assert (states[0] - states[1]).abs().max().item() > 1e-4


def test_prefix_is_excluded_from_pooling(tiny_encoder):
    """Same text, pooled over its own tokens, must differ between prefixes only through attention, and the
    pooled range starts right after BOS + prefix."""
    rows, ranges = tiny_encoder._rows(["hello world"], tiny_encoder.document_prefix, "documents")
    tok = tiny_encoder.tokenizer
    n_prefix = len(tok(DOCUMENT_PREFIX, add_special_tokens=True)["input_ids"])
    assert ranges[0] == (n_prefix, len(rows[0]))
    assert rows[0][n_prefix:] == tok("hello world", add_special_tokens=False)["input_ids"]
    assert rows[0][0] == tok.bos_token_id


def test_matches_gritlm_package(tiny_reasonir_dir, tiny_encoder):
    """The `gritlm` package's GritLM.encode (ReasonIR's evaluation code path) gives the same embeddings."""
    gritlm = pytest.importorskip("gritlm")
    model = gritlm.GritLM(str(tiny_reasonir_dir), mode="embedding", pooling_method="mean", attn="bbcc",
                          device="cpu", torch_dtype=torch.float32)
    prefix = query_prefix(bright_instruction("economics"))
    theirs = model.encode(TEXTS, instruction=prefix, batch_size=1, max_length=2048)
    ours = tiny_encoder.encode_queries(TEXTS, task="economics")
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    theirs_docs = model.encode(TEXTS, instruction=DOCUMENT_PREFIX, batch_size=1, max_length=2048)
    np.testing.assert_allclose(tiny_encoder.encode_documents(TEXTS), theirs_docs, atol=1e-5)

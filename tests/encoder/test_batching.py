"""Length-sorted batching keeps input order; out-of-memory back-off and multi-device loses nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from reasonir_rag._common.batching import token_budget_batches
from reasonir_rag.encoding import backbones
from reasonir_rag.encoding.encoder import ReasonIREncoder

WORDS = "energy enzyme momentum photon cell buffer acid base torque orbit gene protein charge field".split()


def _random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 120))) for _ in range(n)]


def _encoder_like(encoder: ReasonIREncoder, **kwargs) -> ReasonIREncoder:
    """Another encoder over the same loaded model, with other batching settings."""
    return ReasonIREncoder(encoder._backbones, encoder.config, **kwargs)


def test_token_budget_batches_cover_every_index_once():
    rng = random.Random(1)
    lengths = [rng.randint(1, 300) for _ in range(500)]
    batches = token_budget_batches(lengths, max_tokens=1000, max_batch_size=16)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(500))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 1000
    longest_first = [max(lengths[i] for i in b) for b in batches]
    assert longest_first == sorted(longest_first, reverse=True)


def test_input_order_survives_random_length_batching(tiny_encoder):
    texts = _random_texts(40)
    small_batches = _encoder_like(tiny_encoder, max_tokens_per_batch=300, batch_size=8)
    batched = small_batches.encode_documents(texts)
    one_by_one = np.stack([tiny_encoder.encode_documents([t])[0] for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_duplicates_are_encoded_once_and_returned_everywhere(tiny_encoder, monkeypatch):
    seen: list[int] = []
    real = backbones.embed_batch

    def counting(backbone, rows, ranges):
        seen.append(len(rows))
        return real(backbone, rows, ranges)

    monkeypatch.setattr(backbones, "embed_batch", counting)
    out = tiny_encoder.encode_documents(["alpha beta", "gamma", "alpha beta"])
    assert sum(seen) == 2
    np.testing.assert_array_equal(out[0], out[2])


def test_out_of_memory_backoff_loses_nothing(tiny_encoder, monkeypatch):
    """Simulated CUDA OOM (no GPU here): any batch over 400 padded tokens fails; the budget halves until
    batches fit, and every input still gets its exact embedding, in order."""
    texts = _random_texts(30, seed=3)
    expected = tiny_encoder.encode_documents(texts)
    real = backbones.embed_batch
    failures = []

    def oom_over_400_tokens(backbone, rows, ranges):
        if len(rows) * max(len(r) for r in rows) > 400:
            failures.append(len(rows))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(backbone, rows, ranges)

    monkeypatch.setattr(backbones, "embed_batch", oom_over_400_tokens)
    encoder = _encoder_like(tiny_encoder, max_tokens_per_batch=4096, batch_size=64)
    out = encoder.encode_documents(texts)
    assert failures, "the simulated OOM never triggered"
    assert encoder.max_tokens_per_batch <= 400
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_out_of_memory_on_a_single_input_is_a_clear_error(tiny_encoder, monkeypatch):
    def always_oom(backbone, rows, ranges):
        raise RuntimeError("CUDA error: out of memory (simulated)")

    monkeypatch.setattr(backbones, "embed_batch", always_oom)
    with pytest.raises(MemoryError, match="lower max_length"):
        _encoder_like(tiny_encoder).encode_documents(["a short text"])


def test_other_errors_are_not_mistaken_for_oom(tiny_encoder, monkeypatch):
    def broken(backbone, rows, ranges):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(backbones, "embed_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _encoder_like(tiny_encoder).encode_documents(["a", "b"])


def test_several_devices_give_the_same_embeddings(tiny_reasonir_dir, tiny_encoder):
    """devices=[...] loads one replica per device (two CPU replicas here: no GPUs on this machine)."""
    spread = ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), devices=["cpu", "cpu"],
                                             max_tokens_per_batch=256, batch_size=4)
    texts = _random_texts(25, seed=7)
    np.testing.assert_allclose(spread.encode_documents(texts), tiny_encoder.encode_documents(texts), atol=1e-5)

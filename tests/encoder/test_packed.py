"""Packed (padding-free) encoding computes the padded path's embeddings, and packed sequences never see each other."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reasonir_rag.encoding import packed
from reasonir_rag.encoding.encoder import ReasonIREncoder

WORDS = "energy enzyme momentum photon cell buffer acid base torque orbit gene protein charge field".split()
MIXED = [
    "a",  # one text token
    "Why does ice float on water?",
    "Enzymes lower the activation energy of a reaction by stabilising the transition state. " * 6,
    "x",
    "def f(x):\n    return x ** 2  # squares",
    "naïve café 日本語 🤖",
    " ".join(WORDS * 12),  # long: truncated at max_length in both paths
]


@pytest.fixture(scope="module")
def padded_encoder(tiny_reasonir_dir):
    return ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", attention="padded", max_length=128)


@pytest.fixture(scope="module")
def packed_encoder(tiny_reasonir_dir):
    return ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", attention="packed", max_length=128)


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 90))) for _ in range(n)]


def test_packed_mode_is_what_was_asked_for(padded_encoder, packed_encoder, tiny_encoder):
    assert packed_encoder.attention == "packed" and padded_encoder.attention == "padded"
    assert tiny_encoder.attention == "padded"  # auto on a CPU: no varlen kernel here
    assert packed_encoder._backbones[0].model.config._attn_implementation == packed.ATTENTION_NAME
    assert packed_encoder.load_spec()[1]["attention"] == "packed"


@pytest.mark.parametrize("kind", ["documents", "query-task", "query-instruction"])
def test_packed_equals_padded_in_fp32(padded_encoder, packed_encoder, kind):
    if kind == "documents":
        a, b = padded_encoder.encode_documents(MIXED), packed_encoder.encode_documents(MIXED)
    elif kind == "query-task":
        a = padded_encoder.encode_queries(MIXED, task="biology")
        b = packed_encoder.encode_queries(MIXED, task="biology")
    else:
        instruction = "Given a physics problem, retrieve passages that explain the principle"
        a = padded_encoder.encode_queries(MIXED, instruction=instruction)
        b = packed_encoder.encode_queries(MIXED, instruction=instruction)
    assert b.dtype == np.float32 and b.shape == a.shape == (len(MIXED), packed_encoder.dim)
    np.testing.assert_allclose(b, a, atol=1e-5)
    assert np.abs(a[0] - a[3]).max() > 1e-3  # different one-token texts stay different


def test_packed_equals_padded_over_many_batches(padded_encoder, packed_encoder):
    """A small token budget makes several packed batches; the input order survives."""
    texts = _random_texts(24, seed=2)
    small = ReasonIREncoder(packed_encoder._backbones, packed_encoder.config, attention="packed",
                            max_tokens_per_batch=300)
    batches = packed.packed_batches([len(r) for r in small._rows(texts, small.document_prefix, "d")[0]], 300)
    assert len(batches) > 3
    np.testing.assert_allclose(small.encode_documents(texts), padded_encoder.encode_documents(texts), atol=1e-5)


def test_packed_sequences_do_not_see_each_other(packed_encoder):
    """Changing one text (its length too) in a packed row leaves every other text's embedding unchanged."""
    texts = _random_texts(6, seed=4)
    before = packed_encoder.encode_documents(texts)
    changed = list(texts)
    changed[2] = texts[2] + " mitochondria membrane potential"
    after = packed_encoder.encode_documents(changed)
    rows, _ = packed_encoder._rows(changed, packed_encoder.document_prefix, "documents")
    assert len(packed.packed_batches([len(r) for r in rows], packed_encoder.max_tokens_per_batch)) == 1  # one row
    assert np.abs(after[2] - before[2]).max() > 1e-3
    others = [i for i in range(6) if i != 2]
    np.testing.assert_allclose(after[others], before[others], atol=1e-6)


def test_attention_within_a_packed_row_is_bidirectional_and_blockwise(packed_encoder):
    """At the hidden-state level: the first token of a sequence sees its last token, not the next sequence."""
    backbone = packed_encoder._backbones[0]
    tok = backbone.tokenizer
    a = tok("The mitochondria is the powerhouse of the cell")["input_ids"]
    a2 = [*a[:-1], tok("banana", add_special_tokens=False)["input_ids"][0]]
    b = tok("Photons carry momentum")["input_ids"]
    b2 = tok("Photons carry energy and momentum too")["input_ids"]

    def states(rows):
        p = packed.pack(rows, [(0, len(r)) for r in rows], pad_id=0)
        cu = p["cu_seqlens"]
        with torch.inference_mode():
            return backbone.model(input_ids=p["input_ids"], position_ids=p["position_ids"], cu_seq_lens_q=cu,
                                  cu_seq_lens_k=cu, max_length_q=p["max_length"],
                                  max_length_k=p["max_length"]).last_hidden_state[0]

    base, last_changed, next_changed = states([a, b]), states([a2, b]), states([a, b2])
    assert (base[1] - last_changed[1]).abs().max() > 1e-4  # bidirectional within the sequence
    torch.testing.assert_close(base[: len(a)], next_changed[: len(a)], atol=1e-6, rtol=0)  # blind to the next one


def test_length_bucket_filler_changes_nothing(packed_encoder):
    """The compile path pads the packed row to a bucket with a filler sequence: same embeddings."""
    backbone = packed_encoder._backbones[0]
    rows, ranges = packed_encoder._rows(MIXED, packed_encoder.document_prefix, "documents")
    plain = packed.embed_packed(backbone, rows, ranges)
    bucketed = packed.embed_packed(backbone, rows, ranges, bucket=64)
    assert packed.pack(rows, ranges, pad_id=0, bucket=64)["input_ids"].shape[1] % 64 == 0
    torch.testing.assert_close(bucketed, plain, atol=1e-6, rtol=0)


def test_packed_batches_cover_every_index_once_within_the_budget():
    rng = random.Random(1)
    lengths = [rng.randint(1, 300) for _ in range(400)] + [900]
    batches = packed.packed_batches(lengths, max_tokens=800)
    assert sorted(i for b in batches for i in b) == list(range(401))
    assert [400] in batches  # longer than the budget: alone
    assert all(len(b) == 1 or sum(lengths[i] for i in b) <= 800 for b in batches)
    assert max(len(b) for b in batches) > 3  # rows are free: many short texts share one row


def test_packed_forward_refuses_a_model_without_packed_attention(tiny_encoder):
    rows, ranges = tiny_encoder._rows(["a", "b c"], tiny_encoder.document_prefix, "documents")
    with pytest.raises(RuntimeError, match="enable_packed"):
        packed.embed_packed(tiny_encoder._backbones[0], rows, ranges)


def test_attention_choice_errors_and_fallbacks(packed_encoder, caplog):
    model = packed_encoder._backbones[0].model
    with pytest.raises(ValueError, match="attention must be one of"):
        packed.resolve_attention("flash", model, "cpu", torch.float32)
    assert packed.resolve_attention("auto", model, "cpu", torch.float32)[0] == "padded"
    import transformers

    causal = transformers.LlamaModel(transformers.LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=32))
    with caplog.at_level("WARNING", logger="reasonir_rag.encoding.packed"):
        mode, why = packed.resolve_attention("packed", causal, "cpu", torch.float32)
    assert mode == "padded" and "causal" in why and "falls back to padded" in caplog.text
    # a CUDA device without any usable varlen kernel: logged fallback to padded (simulated: no GPU here)
    kernel, reason = packed.varlen_kernel("cuda:0", torch.bfloat16)
    if not torch.cuda.is_available():
        assert kernel is None and "CUDA" in reason


def test_out_of_memory_backoff_in_packed_mode_loses_nothing(packed_encoder, monkeypatch):
    """Simulated CUDA OOM (no GPU here): packed batches over 300 tokens fail; the budget halves; nothing is lost."""
    texts = _random_texts(12, seed=5)
    expected = packed_encoder.encode_documents(texts)
    real = packed.embed_packed
    failures = []

    def oom_over_300_tokens(backbone, rows, ranges, **kwargs):
        if sum(len(r) for r in rows) > 300:
            failures.append(len(rows))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(backbone, rows, ranges, **kwargs)

    monkeypatch.setattr(packed, "embed_packed", oom_over_300_tokens)
    encoder = ReasonIREncoder(packed_encoder._backbones, packed_encoder.config, attention="packed",
                              max_tokens_per_batch=4096)
    out = encoder.encode_documents(texts)
    assert failures and encoder.max_tokens_per_batch <= 300
    np.testing.assert_allclose(out, expected, atol=1e-6)


def _gpu_bench():
    """benchmarks/gpu.py as a module (benchmarks/ is not a package)."""
    if "bench_gpu" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).parents[2] / "benchmarks" / "gpu.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_gpu"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_gpu"]


def test_gpu_benchmark_smoke_runs(capsys, tmp_path):
    """benchmarks/gpu.py --smoke: the prepared GPU script runs end to end on the CPU with tiny shapes."""
    out = _gpu_bench().main(["--smoke", "--json", str(tmp_path / "gpu.json")])
    printed = capsys.readouterr().out
    for name in ("gritlm_loop_bs32", "sorted_padded", "packed_varlen"):
        assert out["encoder"][name]["tok_per_s"] > 0, out["encoder"][name]
    assert out["packed_attention"] == "packed" and out["packed_vs_padded"]["max_abs_diff"] < 1e-5
    for name in ("logits_shared_prefix", "generate_32_tokens"):
        assert out["rerank"][name]["s_per_query"] > 0, out["rerank"][name]
    assert "tokens/s" in printed and "MFU" in printed and "rerank target" in printed
    assert (tmp_path / "gpu.json").exists()


# ------------------------------------------------------------------------------------------------ GPU only
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def gpu_model_dir(tmp_path_factory):
    """A tiny random Llama (head_dim 64, GQA) with a word-level tokenizer: builds on a bare GPU machine, where the
    offline kit's Llama-3.1 tokenizer package is not installed."""
    import transformers

    out = tmp_path_factory.mktemp("gpu-llama")
    config = transformers.LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=20100)
    torch.manual_seed(0)
    transformers.LlamaModel(config).save_pretrained(out)
    _gpu_bench().word_tokenizer(bos=True).save_pretrained(out)
    return out


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("compile", [False, True])
def test_packed_varlen_matches_padded_on_gpu_in_bf16(gpu_model_dir, compile):
    padded = ReasonIREncoder.from_pretrained(str(gpu_model_dir), device="cuda", attention="padded")
    fast = ReasonIREncoder.from_pretrained(str(gpu_model_dir), device="cuda", attention="auto", compile=compile)
    assert fast.attention == "packed", "auto should pick the varlen kernel on CUDA"
    kernel, name = packed.varlen_kernel("cuda", torch.bfloat16)
    assert kernel is not None, name
    rng = random.Random(9)
    texts = [" ".join(f"w{rng.randrange(20000)}" for _ in range(rng.randint(1, 700))) for _ in range(60)]
    a, b = padded.encode_documents(texts), fast.encode_documents(texts)
    if compile:
        assert fast._compile_backend is not None, "the compiled forward failed and fell back (see the log)"
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.999, cos.min()
    np.testing.assert_allclose(b, a, atol=3e-2)

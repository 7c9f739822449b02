"""Checkpoint layouts, the remote-code switch, presets, the embedding cache and the light import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from reasonir_rag import offline
from reasonir_rag.encoding.encoder import ReasonIREncoder
from reasonir_rag.offline import build_tiny_reasonir

TEXTS = ["Photosynthesis turns light into chemical energy.", "A buffer resists changes in pH."]

# A stand-in for ReasonIR-8B's hub modelling file (the hub is unreachable here): a LlamaModel subclass that
# turns causal attention off, and leaves a mark when its code is executed.
STANDIN_MODELING = '''
import os
from transformers import LlamaModel

open(os.environ["REASONIR_REMOTE_CODE_MARK"], "w").write("executed")


class StandInReasonIRModel(LlamaModel):
    def __init__(self, config):
        config.is_causal = False
        super().__init__(config)
        for module in self.modules():
            if hasattr(module, "is_causal"):
                module.is_causal = False
'''


@pytest.mark.parametrize("layout", ["causal_lm", "wrapped"])
def test_checkpoint_key_layouts_load_the_same_weights(tmp_path, tiny_reasonir_dir, tiny_encoder, layout, monkeypatch):
    # the same real Llama-3.1 tokenizer, read back from the session model's folder instead of converted from the
    # tiktoken file again (the conversion is most of a build: ~4 s each); the weights are built anew
    from transformers import AutoTokenizer

    monkeypatch.setattr(offline, "llama3_tokenizer", lambda: AutoTokenizer.from_pretrained(str(tiny_reasonir_dir)))
    folder = build_tiny_reasonir(tmp_path / layout, layout=layout)  # same seed as the session model
    keys = load_file(str(folder / "model.safetensors")).keys()
    assert all(k.startswith({"causal_lm": "model.", "wrapped": "model.model."}[layout]) for k in keys)
    encoder = ReasonIREncoder.from_pretrained(str(folder))
    np.testing.assert_allclose(encoder.encode_documents(TEXTS), tiny_encoder.encode_documents(TEXTS), atol=1e-6)


def test_missing_weights_are_refused(tmp_path, tiny_reasonir_dir):
    folder = tmp_path / "partial"
    shutil.copytree(tiny_reasonir_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    del state["layers.1.mlp.down_proj.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="weights missing"):
        ReasonIREncoder.from_pretrained(str(folder))


def test_non_llama_checkpoint_needs_explicit_remote_code(tmp_path, tiny_reasonir_dir):
    folder = tmp_path / "other"
    shutil.copytree(tiny_reasonir_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "mistral"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        ReasonIREncoder.from_pretrained(str(folder))


@pytest.fixture()
def remote_code_checkpoint(tmp_path, tiny_reasonir_dir, monkeypatch):
    folder = tmp_path / "with-remote-code"
    shutil.copytree(tiny_reasonir_dir, folder)
    (folder / "modeling_standin.py").write_text(STANDIN_MODELING)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_standin.StandInReasonIRModel"}
    config["architectures"] = ["StandInReasonIRModel"]
    (folder / "config.json").write_text(json.dumps(config))
    mark = tmp_path / "remote-code-ran"
    monkeypatch.setenv("REASONIR_REMOTE_CODE_MARK", str(mark))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    return folder, mark


def test_remote_code_is_not_executed_by_default(remote_code_checkpoint, tiny_encoder):
    folder, mark = remote_code_checkpoint
    encoder = ReasonIREncoder.from_pretrained(str(folder))
    assert not mark.exists(), "the checkpoint's own code ran without trust_remote_code=True"
    np.testing.assert_allclose(encoder.encode_documents(TEXTS), tiny_encoder.encode_documents(TEXTS), atol=1e-6)


def test_opt_in_remote_code_gives_the_same_embeddings(remote_code_checkpoint, tiny_encoder):
    folder, mark = remote_code_checkpoint
    encoder = ReasonIREncoder.from_pretrained(str(folder), trust_remote_code=True)
    assert mark.exists(), "trust_remote_code=True did not use the checkpoint's code"
    assert type(encoder._backbones[0].model).__name__ == "StandInReasonIRModel"
    np.testing.assert_allclose(encoder.encode_queries(TEXTS, task="biology"),
                               tiny_encoder.encode_queries(TEXTS, task="biology"), atol=1e-5)


def test_hub_names_go_through_the_hub_and_fail_clearly_offline():
    with pytest.raises(OSError, match="could not find 'reasonir/ReasonIR-8B'"):
        ReasonIREncoder.from_pretrained()
    # the name "reasonir" is the preset's model everywhere (the CLI's --encoder reasonir, the adapters' names)
    with pytest.raises(OSError, match="could not find 'reasonir/ReasonIR-8B'"):
        ReasonIREncoder.from_pretrained("reasonir")


def test_preset_names_are_resolved_in_one_place(minilm_encoder):
    """``"minilm"`` by name, with or without ``preset=``, is all-MiniLM-L6-v2 from its offline package."""
    by_name = ReasonIREncoder.from_pretrained("minilm", device="cpu")
    assert by_name.fingerprint == minilm_encoder.fingerprint
    assert ReasonIREncoder.from_pretrained("minilm", preset="minilm", device="cpu").fingerprint == by_name.fingerprint


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'bm25'"):
        ReasonIREncoder.from_pretrained(preset="bm25")


def test_minilm_matches_sentence_transformers(minilm_encoder):
    from sentence_transformers import SentenceTransformer

    from reasonir_rag.offline import minilm_folder

    reference = SentenceTransformer(str(minilm_folder()), device="cpu")
    texts = [*TEXTS, "Short.", "A much longer passage about thermodynamics and entropy. " * 60]
    theirs = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    for prefix_kind in ("queries", "documents"):
        encode = minilm_encoder.encode_queries if prefix_kind == "queries" else minilm_encoder.encode_documents
        ours = encode(texts)
        cosine = (ours * theirs).sum(axis=1)
        assert cosine.min() >= 0.9999, cosine
    assert minilm_encoder.dim == 384 and minilm_encoder.config.max_length == 256
    assert minilm_encoder.query_prefix(task="biology") == ""


def test_cache_makes_re_encoding_free(tmp_path, tiny_encoder, monkeypatch):
    from reasonir_rag.encoding import backbones
    from reasonir_rag.encoding.cache import EmbeddingCache

    cached = ReasonIREncoder(tiny_encoder._backbones, tiny_encoder.config, cache=EmbeddingCache(tmp_path / "c"))
    first = cached.encode_documents(TEXTS)
    calls = []
    real = backbones.embed_batch
    monkeypatch.setattr(backbones, "embed_batch", lambda *a: calls.append(1) or real(*a))
    again = cached.encode_documents(TEXTS)
    assert calls == [] and len(cached.cache) == 2
    np.testing.assert_array_equal(first, again)
    cached.encode_queries(TEXTS)  # another prefix: another key, so real work
    assert calls and len(cached.cache) == 4


def test_unwritable_cache_folder_is_a_clear_error(tmp_path):
    from reasonir_rag.encoding.cache import EmbeddingCache

    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"embedding cache at .* is not usable"):
        EmbeddingCache(blocker / "cache")


def test_import_is_light():
    code = ("import sys, reasonir_rag; heavy = [m for m in ('torch', 'transformers', 'chromadb', 'openai') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_resolves():
    """``__all__`` and the lazy table agree: each name is importable from the package (a typo would be found
    only by the user who needs that name)."""
    import reasonir_rag

    missing = [name for name in reasonir_rag.__all__ if getattr(reasonir_rag, name, None) is None]
    assert missing == [] and {"synthesize", "SynthesisSettings"} <= set(reasonir_rag.__all__)


def test_shared_encoder_loads_once_per_argument_set(tiny_reasonir_dir):
    from reasonir_rag.encoding.encoder import shared_encoder

    a = shared_encoder(str(tiny_reasonir_dir), device="cpu")
    assert shared_encoder(str(tiny_reasonir_dir), device="cpu") is a
    assert shared_encoder(str(tiny_reasonir_dir), device="cpu", max_length=64) is not a


def test_async_encoding_matches_sync(tiny_encoder):
    import asyncio

    async def both():
        return await asyncio.gather(tiny_encoder.aencode_queries(TEXTS, task="biology"),
                                    tiny_encoder.aencode_documents(TEXTS))

    queries, docs = asyncio.run(both())
    np.testing.assert_allclose(queries, tiny_encoder.encode_queries(TEXTS, task="biology"), atol=1e-6)
    np.testing.assert_allclose(docs, tiny_encoder.encode_documents(TEXTS), atol=1e-6)

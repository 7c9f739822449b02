"""Fixtures for both tiers of the LangChain package's tests: a real embedded Chroma store (tiny ReasonIR-shaped
encoder) and a tiny real-tokenizer reranker. The offline models themselves (``tiny_encoder``, ``tiny_qwen_dir``, ...)
are the session's shared ones (tests/fixtures.py at the repository root); the vLLM server, SmolLM2 and the MiniLM
store are in integration_tests/conftest.py."""

from __future__ import annotations

import pytest

from .helpers import TINY_TEXTS


@pytest.fixture(scope="session")
def tiny_store(tiny_encoder, tmp_path_factory):
    """A real embedded Chroma collection of 8 short texts with a ``topic`` field, tiny ReasonIR-shaped encoder."""
    from reasonir_rag.index.store import ChromaStore

    store = ChromaStore("lc-tiny", encoder=tiny_encoder, path=tmp_path_factory.mktemp("chroma-tiny"))
    store.add([t for _, t, _ in TINY_TEXTS], ids=[i for i, _, _ in TINY_TEXTS],
              metadatas=[{"topic": topic} for _, _, topic in TINY_TEXTS])
    return store


@pytest.fixture(scope="session")
def tiny_qwen_reranker(tiny_qwen_llm):
    """ReasonIR's reranker on a tiny random Qwen2 with the real Qwen2.5 tokenizer (real code path, random scores)."""
    from reasonir_rag.pipeline.reranker import QwenReranker

    return QwenReranker(tiny_qwen_llm)

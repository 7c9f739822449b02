"""Fixtures for the LlamaIndex integration tests: the session's real vLLM server (SmolLM2), through the core's
OpenAI-compatible backend and through LlamaIndex's own OpenAILike LLM."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def served_llm(vllm_server) -> Any:
    """The session's real vLLM server (SmolLM2): ``.base_url`` (…/v1) and ``.model``."""
    return vllm_server


@pytest.fixture(scope="session")
def server_llm(served_llm, smollm2_dir):
    """The core's OpenAI-compatible backend on the server (rewriter and reranker), with SmolLM2's tokenizer."""
    from reasonir_rag.llm import OpenAICompatibleLLM

    return OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, tokenizer=str(smollm2_dir),
                               max_retries=1, timeout=120)


@pytest.fixture(scope="session")
def reader_llm(served_llm):
    """LlamaIndex's own OpenAILike LLM on the same server (the response synthesizer)."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model=served_llm.model, api_base=served_llm.base_url, api_key="EMPTY", is_chat_model=True,
                      context_window=2048, max_tokens=48, temperature=0.0, timeout=120)



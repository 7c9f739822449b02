"""ReasonIRQueryTransform without a server: a dead server's fallback (the question, embedded as a query) and a
LlamaIndex LLM refused. The rewrites themselves (SmolLM2 on the real vLLM server) are in
integration_tests/test_query_transform.py."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from reasonir_rag.llm import OpenAICompatibleLLM
from tests.llamaindex_fixtures import GRAM_QUESTION

from llama_index.retrievers.reasonir import ReasonIRQueryTransform


def test_a_failed_rewrite_embeds_the_question_as_a_query(tiny_biology, tiny_encoder, caplog):
    """A dead server: the rewriter falls back to the question (logged); a question is a query, even for hyde."""
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = OpenAICompatibleLLM("nobody", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=5)
    transform = ReasonIRQueryTransform.from_llm(dead, tiny_biology, style="hyde")
    with caplog.at_level("WARNING", logger="reasonir_rag.pipeline.rewriter"):
        bundle = transform.run(GRAM_QUESTION)
    assert any("using the original question" in r.getMessage() for r in caplog.records)
    assert bundle.custom_embedding_strs == [GRAM_QUESTION]
    np.testing.assert_allclose(bundle.embedding, tiny_encoder.encode_queries([GRAM_QUESTION], task="biology")[0],
                               atol=1e-5)


def test_a_llamaindex_llm_is_taken_and_none_is_settings_llm(tiny_biology):
    from llama_index.core import Settings
    from llama_index.llms.openai_like import OpenAILike

    reader = OpenAILike(model="smollm2", api_base="http://127.0.0.1:9/v1", api_key="EMPTY", is_chat_model=True)
    transform = ReasonIRQueryTransform.from_llm(reader, tiny_biology)
    assert transform.rewriter.llm.model is reader
    saved = Settings._llm
    Settings.llm = reader
    try:
        assert ReasonIRQueryTransform.from_llm(None, tiny_biology).rewriter.llm.model is reader
    finally:
        Settings._llm = saved
    with pytest.raises(TypeError, match=r"a LlamaIndex LLM \(e.g. OpenAILike"):
        ReasonIRQueryTransform.from_llm(object(), tiny_biology)

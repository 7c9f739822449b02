"""ReasonIRQueryTransform: the core rewriter (SmolLM2 on the real vLLM server), embedded with the right prefix.
Without a server: unit_tests/test_query_transform.py."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.indices.query.query_transform.base import BaseQueryTransform
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.pipeline.rewriter import QueryRewriter
from tests.llamaindex_fixtures import GRAM_QUESTION

from llama_index.retrievers.reasonir import ReasonIRQueryTransform


@pytest.mark.parametrize("style, prefix_kind", [("reasonir", "query"), ("hyde", "document")])
def test_the_rewrite_is_embedded_with_the_prefix_it_was_written_for(style, prefix_kind, server_llm, tiny_biology,
                                                                    tiny_encoder, tmp_path):
    transform = ReasonIRQueryTransform.from_llm(server_llm, tiny_biology, style=style, max_tokens=32,
                                                cache=tmp_path / "rewrites.sqlite")
    assert isinstance(transform, BaseQueryTransform)
    assert transform.rewriter.encoder is tiny_encoder and transform.rewriter.task == "biology"
    bundle = transform.run(GRAM_QUESTION)
    rewrite = transform.rewriter.rewrite_query(GRAM_QUESTION)  # the same rewrite, from the rewriter's cache
    assert rewrite.cached and rewrite.error is None and rewrite.prefix_kind == prefix_kind
    assert bundle.query_str == GRAM_QUESTION and bundle.custom_embedding_strs == [rewrite.text]
    assert len(rewrite.text) > len(GRAM_QUESTION)
    query_side = tiny_encoder.encode([rewrite.text], prefix=tiny_encoder.query_prefix(task="biology"))[0]
    document_side = tiny_encoder.encode([rewrite.text], prefix=tiny_encoder.document_prefix)[0]
    right, wrong = (query_side, document_side) if prefix_kind == "query" else (document_side, query_side)
    np.testing.assert_allclose(bundle.embedding, right, atol=1e-5)
    assert np.abs(np.asarray(bundle.embedding) - wrong).max() > 1e-3


def test_built_from_a_rewriter_and_an_encoder(server_llm, tiny_encoder):
    rewriter = QueryRewriter(server_llm, encoder=tiny_encoder, task="biology", max_tokens=16)
    transform = ReasonIRQueryTransform(rewriter, tiny_encoder)
    assert transform.embed_model.encoder is tiny_encoder and transform.embed_model.task == "biology"
    assert transform.get_prompts() == {}


def test_bad_input(server_llm, tiny_biology):
    transform = ReasonIRQueryTransform.from_llm(server_llm, tiny_biology)
    with pytest.raises(InvalidInputError, match="#0 is empty"):
        transform.run("  ")
    with pytest.raises(TypeError, match="QueryRewriter"):
        ReasonIRQueryTransform(server_llm, tiny_biology)
    with pytest.raises(TypeError, match="ReasonIREmbedding or ReasonIREncoder"):
        ReasonIRQueryTransform(transform.rewriter, "minilm")
    with pytest.raises(ValueError, match="core rewriter's prompts"):
        transform.update_prompts({"hyde_prompt": "x"})

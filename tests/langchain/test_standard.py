"""LangChain's standard test suites, subclassed unmodified (only the construction parameters are ours)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_reasonir import ReasonIREmbeddings, ReasonIRRetriever
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

# The suites' async tests carry no marker (LangChain packages run pytest-asyncio in auto mode); mark them here
# and silence pytest-asyncio's note about the module mark on the suites' sync tests.
pytestmark = [pytest.mark.asyncio,
              pytest.mark.filterwarnings("ignore:The test <Function .* is not an async function")]


class _TinyModel:
    """Points the suites at the tiny ReasonIR-shaped checkpoint (real Llama-3.1 tokenizer, random weights)."""

    @pytest.fixture(autouse=True)
    def _tiny_checkpoint(self, tiny_reasonir_dir) -> None:
        self.tiny_dir = str(tiny_reasonir_dir)

    @property
    def embeddings_class(self) -> type[ReasonIREmbeddings]:
        return ReasonIREmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": self.tiny_dir, "device": "cpu"}


class TestReasonIREmbeddingsUnit(_TinyModel, EmbeddingsUnitTests):
    pass


class TestReasonIREmbeddingsIntegration(_TinyModel, EmbeddingsIntegrationTests):
    pass


class TestReasonIRRetrieverIntegration(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _store(self, tiny_store) -> None:
        self.store = tiny_store

    @property
    def retriever_constructor(self) -> type[ReasonIRRetriever]:
        return ReasonIRRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self.store}

    @property
    def retriever_query_example(self) -> str:
        return "why does ice float?"

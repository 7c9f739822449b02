"""LangChain's standard integration test suites for the embeddings and the retriever, subclassed unmodified (only
the construction parameters are ours): the tiny ReasonIR-shaped checkpoint and a real embedded Chroma store, no
server. The standard unit suite is in unit_tests/test_standard.py."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests

from langchain_reasonir import ReasonIRRetriever

from ..helpers import TinyCheckpoint

# The suites' async tests carry no marker (LangChain packages run pytest-asyncio in auto mode); mark them here
# and silence pytest-asyncio's note about the module mark on the suites' sync tests.
pytestmark = [pytest.mark.asyncio,
              pytest.mark.filterwarnings("ignore:The test <Function .* is not an async function")]


class TestReasonIREmbeddingsIntegration(TinyCheckpoint, EmbeddingsIntegrationTests):
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

"""LangChain's standard unit test suite for the embeddings, subclassed unmodified (only the construction parameters
are ours). The standard integration suites are in integration_tests/test_standard.py."""

from __future__ import annotations

import pytest
from langchain_tests.unit_tests import EmbeddingsUnitTests

from ..helpers import TinyCheckpoint

# The suites' async tests carry no marker (LangChain packages run pytest-asyncio in auto mode); mark them here
# and silence pytest-asyncio's note about the module mark on the suites' sync tests.
pytestmark = [pytest.mark.asyncio,
              pytest.mark.filterwarnings("ignore:The test <Function .* is not an async function")]


class TestReasonIREmbeddingsUnit(TinyCheckpoint, EmbeddingsUnitTests):
    pass

"""The session's real vLLM server (SmolLM2) for the reranker's integration tests (tests/llamaindex_fixtures.py)."""

from tests.llamaindex_fixtures import served_llm

__all__ = ["served_llm"]

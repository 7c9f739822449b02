"""The session's real vLLM server (SmolLM2) for the retriever package's integration tests: through the core's
OpenAI-compatible backend (``server_llm``) and LlamaIndex's own OpenAILike (``reader_llm``); see
tests/llamaindex_fixtures.py."""

from tests.llamaindex_fixtures import reader_llm, served_llm, server_llm

__all__ = ["reader_llm", "served_llm", "server_llm"]

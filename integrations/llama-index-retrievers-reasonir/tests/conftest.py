"""Fixtures of llama-index-retrievers-reasonir's tests: the LlamaIndex packages' shared ones
(tests/llamaindex_fixtures.py at the repository root); the offline models are the session's (tests/fixtures.py)."""

from tests.llamaindex_fixtures import chroma_client, events, openstax_modules, tiny_biology

__all__ = ["chroma_client", "events", "openstax_modules", "tiny_biology"]

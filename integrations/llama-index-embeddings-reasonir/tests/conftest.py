"""Fixtures of llama-index-embeddings-reasonir's tests: the LlamaIndex packages' shared ones
(tests/llamaindex_fixtures.py at the repository root); the offline models are the session's (tests/fixtures.py)."""

from tests.llamaindex_fixtures import chroma_client, events, openstax_modules

__all__ = ["chroma_client", "events", "openstax_modules"]

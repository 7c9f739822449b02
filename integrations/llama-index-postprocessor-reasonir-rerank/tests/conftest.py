"""Fixtures of llama-index-postprocessor-reasonir-rerank's tests: the LlamaIndex packages' shared ones
(tests/llamaindex_fixtures.py at the repository root); the offline models are the session's (tests/fixtures.py)."""

from tests.llamaindex_fixtures import events, openstax_modules

__all__ = ["events", "openstax_modules"]

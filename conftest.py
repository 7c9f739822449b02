"""The whole suite's conftest: the core's tests (``tests/``) and the framework packages' own tests
(``integrations/langchain-reasonir/tests/`` and the three ``integrations/llama-index-*-reasonir*/tests/``, whose
shared fixtures are ``tests/llamaindex_fixtures.py``), run together from here.

- The shared session fixtures (offline models, sample data, the real Chroma and vLLM servers) are one set, in
  ``tests/fixtures.py``, loaded for every test as a plugin: each model is built once per session, whichever
  package's tests use it.
- The fast tier (``make test-fast``: ``-m "not server and not llm"``) is marked here, from the fixtures a test uses
  and the folder it lives in.
- The packages lay their tests out as LangChain's and LlamaIndex's partner packages do: ``tests/unit_tests/`` (no
  server, no LLM: checked here) and ``tests/integration_tests/`` (the vLLM server, SmolLM2, and LangChain's standard
  integration suites). Their folders have no ``__init__.py``: under ``--import-mode=importlib`` (pyproject.toml)
  their modules get names from their paths, so they cannot collide with the core's ``tests`` package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing may reach a model hub; sockets are limited to loopback by pytest-socket (pyproject addopts).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["tests.fixtures"]

# The fast tier (`make test-fast`) leaves out what starts a server or runs an LLM; these fixtures (and every
# fixture built on them) and these folders (under the repository root) mark a test as such.
_SERVER_FIXTURES = {"vllm_server", "chroma_server", "chroma_server_factory", "ray_cluster"}
_LLM_FIXTURES = {"vllm_server", "smollm2_dir"}
_LLM_FOLDERS = {"demo", "cookbook"}  # the demo and the cookbook load SmolLM2 themselves
_SERVER_FOLDERS = {"scale"}  # Ray, served encoders
_UNIT_FOLDER = "unit_tests"  # a package's unit tests: neither marker allowed


def _folders(item: pytest.Item, root: Path) -> set[str]:
    path = Path(str(item.path))
    try:
        return set(path.relative_to(root).parts[:-1])  # not the checkout's own location (a clone in ~/demo/)
    except ValueError:
        return set(path.parts[:-1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that talk to the vLLM server run last, together: the server starts once, late, and its engine
    does not compete for the 2 cores while the other tests run. Each test gets the ``server`` and ``llm``
    markers it needs, for the fast tier; a package's ``unit_tests`` folder may hold neither."""
    misplaced = []
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        folders = _folders(item, config.rootpath)
        server = bool(used & _SERVER_FIXTURES or folders & _SERVER_FOLDERS)
        llm = bool(used & _LLM_FIXTURES or folders & _LLM_FOLDERS)
        if server:
            item.add_marker(pytest.mark.server)
        if llm:
            item.add_marker(pytest.mark.llm)
        if (server or llm) and _UNIT_FOLDER in folders:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError("unit tests that need a server or an LLM (move them to integration_tests/):\n  "
                                + "\n  ".join(misplaced))
    items.sort(key=lambda item: "vllm_server" in getattr(item, "fixturenames", ()))

"""Fixtures for running the cookbook scripts: their environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def cookbook_env(offline_cache) -> dict[str, str]:
    """Small default sizes (REASONIR_COOKBOOK_SMOKE), no hub, the session's converted SmolLM2."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env.update(REASONIR_COOKBOOK_SMOKE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               TOKENIZERS_PARALLELISM="false", REASONIR_OFFLINE_CACHE=str(offline_cache),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env

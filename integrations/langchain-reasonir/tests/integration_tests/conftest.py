"""Fixtures for the LangChain integration tests: the real vLLM server (SmolLM2) for the end-to-end chain, SmolLM2
in-process for rewriting, and a real embedded Chroma store of OpenStax passages with MiniLM (real weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reasonir_rag.sample_data import openstax_records

# OpenStax sections for the MiniLM store (a few topics, whole sections, ~40 passages) and a question each.
OPENSTAX_SECTIONS = {
    "university-physics-bundle": ["Speed of Sound"],
    "chemistry-bundle": ["Isotopes"],
    "microbiology": ["Chemical Food Preservatives"],
    "anatomy-physiology": ["Electrocardiogram", "Stratum Basale"],
}


@pytest.fixture(scope="session")
def served_llm(vllm_server) -> Any:
    """The shared vLLM server (SmolLM2): ``.base_url`` (…/v1) and ``.model``."""
    return vllm_server


@pytest.fixture(scope="session")
def openstax_passages(repo_data: Path) -> list[dict[str, Any]]:
    rows = []
    for name, sections in OPENSTAX_SECTIONS.items():
        rows += [r for r in openstax_records(name, repo_data / "openstax") if r["section"] in sections]
    assert 20 <= len(rows) <= 120, f"unexpected OpenStax subset size {len(rows)}"
    return rows


@pytest.fixture(scope="session")
def minilm_store(minilm_encoder, openstax_passages, tmp_path_factory):
    """A real embedded Chroma collection of OpenStax passages, all-MiniLM-L6-v2 (real weights)."""
    from reasonir_rag.index.store import ChromaStore

    store = ChromaStore("lc-openstax", encoder=minilm_encoder, path=tmp_path_factory.mktemp("chroma-minilm"))
    store.add([r["text"] for r in openstax_passages], ids=[r["id"] for r in openstax_passages],
              metadatas=[{"book": r["book"], "section": r["section"]} for r in openstax_passages])
    return store


@pytest.fixture(scope="session")
def smollm2_local(smollm2_dir):
    """SmolLM2-135M-Instruct (real weights) in-process, for rewriting without a server."""
    from reasonir_rag.llm import TransformersLLM

    return TransformersLLM(str(smollm2_dir), device="cpu")


@pytest.fixture(scope="session")
def rewrite_cache(tmp_path_factory) -> Path:
    """A persistent rewrite cache for the session: a repeated question costs no second generation."""
    return tmp_path_factory.mktemp("rewrites") / "rewrites.sqlite"


@pytest.fixture(scope="session")
def smollm2_rewriter(smollm2_local, rewrite_cache):
    """ReasonIR-style rewriting with SmolLM2 (16 new tokens: enough to see a rewrite, cheap on CPU)."""
    from reasonir_rag.pipeline.rewriter import QueryRewriter

    return QueryRewriter(smollm2_local, max_tokens=16, cache=rewrite_cache)

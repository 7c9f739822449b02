"""Fixtures for the LangChain integration: real Chroma stores (tiny ReasonIR-shaped encoder, MiniLM over OpenStax
passages), a tiny real-tokenizer reranker, and the real vLLM server (SmolLM2) for the end-to-end chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reasonir_rag.sample_data import openstax_records

TINY_TEXTS = [
    ("bio-1", "Photosynthesis turns light, water and carbon dioxide into sugar in the chloroplasts.", "biology"),
    ("bio-2", "Mitochondria make ATP through cellular respiration.", "biology"),
    ("bio-3", "Ribosomes translate messenger RNA into proteins.", "biology"),
    ("phy-1", "Sound travels faster in warm air than in cold air.", "physics"),
    ("phy-2", "A net force on a body changes its momentum over time.", "physics"),
    ("phy-3", "Ice floats because it is less dense than liquid water.", "physics"),
    ("che-1", "Isotopes of an element differ in their number of neutrons.", "chemistry"),
    ("che-2", "An acid donates protons and a base accepts them.", "chemistry"),
]

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
def tiny_store(tiny_encoder, tmp_path_factory):
    """A real embedded Chroma collection of 8 short texts with a ``topic`` field, tiny ReasonIR-shaped encoder."""
    from reasonir_rag.index.store import ChromaStore

    store = ChromaStore("lc-tiny", encoder=tiny_encoder, path=tmp_path_factory.mktemp("chroma-tiny"))
    store.add([t for _, t, _ in TINY_TEXTS], ids=[i for i, _, _ in TINY_TEXTS],
              metadatas=[{"topic": topic} for _, _, topic in TINY_TEXTS])
    return store


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
def tiny_qwen_reranker(tiny_qwen_dir):
    """ReasonIR's reranker on a tiny random Qwen2 with the real Qwen2.5 tokenizer (real code path, random scores)."""
    from reasonir_rag.llm import TransformersLLM
    from reasonir_rag.pipeline.reranker import QwenReranker

    return QwenReranker(TransformersLLM(str(tiny_qwen_dir), device="cpu"))


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

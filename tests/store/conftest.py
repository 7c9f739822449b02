"""Fixtures for the store, chunker, loader and CLI tests: a real Chroma server, a counting encoder."""

from __future__ import annotations

from typing import Any

import pytest

from reasonir_rag.sample_data import jsonl_files, read_jsonl


class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed (to prove that re-adds cost no model time)."""

    def __init__(self, encoder: Any):
        self._encoder = encoder
        self.documents_encoded = 0
        self.queries_encoded = 0
        self.document_calls: list[int] = []  # how many texts each encode_documents call held

    def encode_documents(self, texts, **kwargs):
        self.documents_encoded += len(texts)
        self.document_calls.append(len(texts))
        return self._encoder.encode_documents(texts, **kwargs)

    def encode_queries(self, texts, **kwargs):
        self.queries_encoded += 1 if isinstance(texts, str) else len(texts)
        return self._encoder.encode_queries(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


@pytest.fixture
def counting(tiny_encoder) -> CountingEncoder:
    return CountingEncoder(tiny_encoder)


OPENSTAX_IDS = (
    "chemistry-2e/m68808/0",  # buffers
    "university-physics-volume-1/m58299/0",  # Newton's third law
    "microbiology/m58819/10",  # enzymes lower activation energy
    "chemistry-2e/m68837/3",  # photosynthesis and oxygen
    "anatomy-and-physiology-2e/m46023/10",  # mitochondria
    "chemistry-2e/m68663/0",  # why study chemistry (a distractor)
    "university-physics-volume-1/m58268/0",  # units and measurement (a distractor)
)


@pytest.fixture(scope="session")
def openstax_sample(repo_data) -> list[dict[str, Any]]:
    """A handful of real OpenStax passages (CC BY 4.0) with clearly different topics."""
    wanted = set(OPENSTAX_IDS)
    rows: dict[str, dict[str, Any]] = {}
    for path in jsonl_files(repo_data / "openstax"):
        rows.update((row["id"], row) for row in read_jsonl(path) if row["id"] in wanted)
    missing = wanted - set(rows)
    assert not missing, f"OpenStax passages missing from {repo_data}: {sorted(missing)}"
    return [rows[i] for i in OPENSTAX_IDS]

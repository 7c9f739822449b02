"""A small OpenStax corpus for the demo tests: three chapters that hold the showcase questions' answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonir_rag.sample_data import openstax_records

# file -> chapter: enzymes (college_biology 20), the heart (anatomy 63), gases (high_school_chemistry 91)
CHAPTERS = {
    "microbiology": "Microbial Metabolism",
    "anatomy-physiology": "The Cardiovascular System: The Heart",
    "chemistry-bundle": "Gases",
}
PER_CHAPTER = 80


@pytest.fixture(scope="session")
def demo_corpus(repo_data, tmp_path_factory) -> Path:
    """240 real OpenStax passages (CC BY 4.0) in one JSONL file, as ``--data`` takes them."""
    folder = tmp_path_factory.mktemp("demo-openstax")
    rows = []
    for name, chapter in CHAPTERS.items():
        rows += [r for r in openstax_records(name, repo_data / "openstax") if r["chapter"] == chapter][:PER_CHAPTER]
    assert len(rows) == PER_CHAPTER * len(CHAPTERS)
    (folder / "sample.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return folder

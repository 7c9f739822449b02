"""What the LlamaIndex tests share: the Gram-stain question and its passage, and a Chroma collection maker.

Imported relatively (``from ..helpers import ...``): the package's test folders have no ``__init__.py`` and pytest
imports them with ``--import-mode=importlib`` under names taken from their paths (see the root conftest.py)."""

from __future__ import annotations

from typing import Any

GRAM_QUESTION = "Which steps of the Gram stain tell gram-positive from gram-negative bacteria?"
GRAM_PASSAGE = "microbiology/m58788/9"


def new_collection(client: Any, name: str) -> Any:
    return client.create_collection(name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})

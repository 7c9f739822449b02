"""Fixtures for both tiers of the LlamaIndex package's tests: OpenStax passages, a real embedded Chroma and a
recorder of LlamaIndex's events. The offline models themselves (``tiny_encoder``, ``minilm_encoder``,
``tiny_qwen_llm``, ...) are the session's shared ones (tests/fixtures.py at the repository root); the vLLM server's
LLMs are in integration_tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from reasonir_rag.sample_data import openstax_records

# (file, module) -> the first 10 passages of each: 40 passages on four unrelated topics
SAMPLE_MODULES = (
    ("microbiology", "Staining Microscopic Specimens"),
    ("anatomy-physiology", "Homeostasis"),
    ("chemistry-bundle", "Measurement Uncertainty, Accuracy, and Precision"),
    ("university-physics-bundle", "Scalars and Vectors"),
)


@pytest.fixture(scope="session")
def openstax_modules(repo_data) -> list[dict[str, Any]]:
    """40 OpenStax passages (id, book, section, text) from four modules."""
    rows: list[dict[str, Any]] = []
    for name, module in SAMPLE_MODULES:
        picked = [r for r in openstax_records(name, repo_data / "openstax") if r["module"] == module][:10]
        assert len(picked) == 10, f"{name}: module {module!r} changed"
        rows += [{"id": r["id"], "book": r["book"], "section": r["section"], "text": r["text"]} for r in picked]
    return rows


@pytest.fixture(scope="session")
def chroma_client(tmp_path_factory):
    """A real embedded Chroma (never its default embedding function: collections are made with None)."""
    import chromadb

    return chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("li-chroma")),
                                     settings=chromadb.config.Settings(anonymized_telemetry=False))


@pytest.fixture(scope="module")
def tiny_biology(tiny_encoder):
    """ReasonIREmbedding on the tiny encoder with the biology task (the query transform's tests)."""
    from llama_index.embeddings.reasonir import ReasonIREmbedding

    return ReasonIREmbedding(encoder=tiny_encoder, task="biology")


# ---------------------------------------------------------------------------------------------- LlamaIndex events
class Recorder:
    """Every instrumentation event LlamaIndex dispatches while installed."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def events() -> Iterator[Recorder]:
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    recorder = Recorder()

    class Handler(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "TestRecorder"

        def handle(self, event: Any, **kwargs: Any) -> None:
            recorder.events.append(event)

    root = get_dispatcher()
    handler = Handler()
    root.add_event_handler(handler)
    try:
        yield recorder
    finally:
        root.event_handlers.remove(handler)

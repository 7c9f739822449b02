"""What the three LlamaIndex packages' tests share (``integrations/llama-index-*-reasonir*/tests/``): OpenStax
passages, a real embedded Chroma, a recorder of LlamaIndex's events, the session's vLLM server as LlamaIndex and
core LLMs, the Gram-stain question and its passage, and a Chroma collection maker.

Each package's ``tests/conftest.py`` (and ``tests/integration_tests/conftest.py``) imports the fixtures it uses from
here; test modules import the constants (``from tests.llamaindex_fixtures import GRAM_QUESTION``). The offline
models themselves (``tiny_encoder``, ``minilm_encoder``, ``tiny_qwen_llm``, ...) are the session's shared ones
(``tests/fixtures.py``). LlamaIndex is imported inside the fixtures: the core's tests never need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reasonir_rag.sample_data import openstax_records

GRAM_QUESTION = "Which steps of the Gram stain tell gram-positive from gram-negative bacteria?"
GRAM_PASSAGE = "microbiology/m58788/9"

# (file, module) -> the first 10 passages of each: 40 passages on four unrelated topics
SAMPLE_MODULES = (
    ("microbiology", "Staining Microscopic Specimens"),
    ("anatomy-physiology", "Homeostasis"),
    ("chemistry-bundle", "Measurement Uncertainty, Accuracy, and Precision"),
    ("university-physics-bundle", "Scalars and Vectors"),
)


def new_collection(client: Any, name: str) -> Any:
    return client.create_collection(name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})


def openai_like(served_llm: Any, **kwargs: Any) -> Any:
    """LlamaIndex's ``OpenAILike`` on the session's vLLM server (``served_llm``), with ``kwargs`` (``is_chat_model``,
    ``logprobs``...)."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model=served_llm.model, api_base=served_llm.base_url, api_key="EMPTY", context_window=2048,
                      timeout=120, max_retries=0, **kwargs)


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


# ---------------------------------------------------------------------------------------------- the vLLM server
@pytest.fixture(scope="session")
def served_llm(vllm_server) -> Any:
    """The session's real vLLM server (SmolLM2): ``.base_url`` (…/v1) and ``.model``."""
    return vllm_server


@pytest.fixture(scope="session")
def server_llm(served_llm, smollm2_dir):
    """The core's OpenAI-compatible backend on the server (rewriter and reranker), with SmolLM2's tokenizer."""
    from reasonir_rag.llm import OpenAICompatibleLLM

    return OpenAICompatibleLLM(served_llm.model, base_url=served_llm.base_url, tokenizer=str(smollm2_dir),
                               max_retries=1, timeout=120)


@pytest.fixture(scope="session")
def reader_llm(served_llm):
    """LlamaIndex's own OpenAILike LLM on the same server (the response synthesizer)."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model=served_llm.model, api_base=served_llm.base_url, api_key="EMPTY", is_chat_model=True,
                      context_window=2048, max_tokens=48, temperature=0.0, timeout=120)

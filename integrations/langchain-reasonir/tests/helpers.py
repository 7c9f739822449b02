"""What the LangChain tests share: the tiny store's texts, the standard suites' tiny checkpoint, and a callback
handler that records runs, to check what LangChain saw and how runs nest.

Imported relatively (``from ..helpers import ...``): the package's test folders have no ``__init__.py`` and pytest
imports them with ``--import-mode=importlib`` under names taken from their paths (see the root conftest.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_reasonir import ReasonIREmbeddings

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


class TinyCheckpoint:
    """For LangChain's standard embeddings suites (unit and integration): points them at the tiny ReasonIR-shaped
    checkpoint (real Llama-3.1 tokenizer, random weights)."""

    @pytest.fixture(autouse=True)
    def _tiny_checkpoint(self, tiny_reasonir_dir) -> None:
        self.tiny_dir = str(tiny_reasonir_dir)

    @property
    def embeddings_class(self) -> type[ReasonIREmbeddings]:
        return ReasonIREmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": self.tiny_dir, "device": "cpu"}


class RunRecorder(BaseCallbackHandler):
    """Records (event, name, run_id, parent_run_id, payload) for chain, retriever, chat-model and LLM runs."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def _add(self, event: str, run_id: UUID, parent_run_id: UUID | None, payload: Any, name: str | None) -> None:
        self.events.append({"event": event, "name": name, "run_id": run_id, "parent": parent_run_id,
                            "payload": payload})

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kwargs):
        self._add("chain_start", run_id, parent_run_id, inputs, kwargs.get("name"))

    def on_chain_end(self, outputs, *, run_id, parent_run_id=None, **kwargs):
        self._add("chain_end", run_id, parent_run_id, outputs, None)

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kwargs):
        self._add("retriever_start", run_id, parent_run_id, query, kwargs.get("name"))

    def on_retriever_end(self, documents, *, run_id, parent_run_id=None, **kwargs):
        self._add("retriever_end", run_id, parent_run_id, documents, None)

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kwargs):
        self._add("chat_model_start", run_id, parent_run_id, messages, kwargs.get("name"))

    def on_llm_start(self, serialized, prompts, *, run_id, parent_run_id=None, **kwargs):
        self._add("llm_start", run_id, parent_run_id, prompts, kwargs.get("name"))

    def on_llm_end(self, response, *, run_id, parent_run_id=None, **kwargs):
        self._add("llm_end", run_id, parent_run_id, response, None)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def parent_name(self, event: dict[str, Any]) -> str | None:
        """The name of the run ``event``'s run is a child of."""
        return next((e["name"] for e in self.events if e["event"].endswith("_start") and e["run_id"] ==
                     event["parent"]), None)

    def first(self, event: str, name: str | None = None) -> dict[str, Any]:
        for e in self.events:
            if e["event"] == event and (name is None or e["name"] == name):
                return e
        raise AssertionError(f"no {event} event{f' named {name!r}' if name else ''} among "
                             f"{[(e['event'], e['name']) for e in self.events]}")

    def end_of(self, start: dict[str, Any]) -> dict[str, Any]:
        kind = start["event"].replace("_start", "_end")
        return next(e for e in self.events if e["event"] == kind and e["run_id"] == start["run_id"])

"""A callback handler that records runs, to check what LangChain saw and how runs nest."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler


class RunRecorder(BaseCallbackHandler):
    """Records (event, name, run_id, parent_run_id, payload) for chain, retriever and chat-model runs."""

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

    def first(self, event: str, name: str | None = None) -> dict[str, Any]:
        for e in self.events:
            if e["event"] == event and (name is None or e["name"] == name):
                return e
        raise AssertionError(f"no {event} event{f' named {name!r}' if name else ''} among "
                             f"{[(e['event'], e['name']) for e in self.events]}")

    def end_of(self, start: dict[str, Any]) -> dict[str, Any]:
        kind = start["event"].replace("_start", "_end")
        return next(e for e in self.events if e["event"] == kind and e["run_id"] == start["run_id"])

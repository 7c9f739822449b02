"""LlamaIndex's rerank events around one reranking, wherever it happens (the postprocessor, the retriever)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, QueryBundle

dispatcher = get_dispatcher(__name__)


@contextmanager
def rerank_events(callback_manager: CallbackManager, query: QueryBundle, nodes: list[NodeWithScore], top_n: int,
                  model: str) -> Iterator[Callable[[list[NodeWithScore]], list[NodeWithScore]]]:
    """``ReRankStartEvent`` and the ``RERANKING`` callback on entry; call the yielded ``finish(ranked)`` with the
    result to send ``ReRankEndEvent`` and close the callback event (it returns ``ranked``)."""
    dispatcher.event(ReRankStartEvent(query=query, nodes=nodes, top_n=top_n, model_name=model))
    with callback_manager.event(
        CBEventType.RERANKING,
        payload={EventPayload.NODES: nodes, EventPayload.MODEL_NAME: model, EventPayload.QUERY_STR: query.query_str,
                 EventPayload.TOP_K: top_n},
    ) as event:

        def finish(ranked: list[NodeWithScore]) -> list[NodeWithScore]:
            event.on_end(payload={EventPayload.NODES: ranked})
            dispatcher.event(ReRankEndEvent(nodes=ranked))
            return ranked

        yield finish

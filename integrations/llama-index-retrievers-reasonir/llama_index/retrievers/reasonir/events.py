"""LlamaIndex's embedding events around a query encoding the retriever does itself, with the store's own encoder,
sent as LlamaIndex's ``BaseEmbedding.get_query_embedding`` sends them: ``EmbeddingStartEvent`` (the model's
description), the ``EMBEDDING`` callback event, ``EmbeddingEndEvent`` with the texts as ``chunks`` and their vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent

dispatcher = get_dispatcher(__name__)


@contextmanager
def embedding_events(callback_manager: CallbackManager, model_dict: dict[str, Any],
                     chunks: list[str]) -> Iterator[Callable[[Iterable[Iterable[float]]], None]]:
    """``EmbeddingStartEvent`` and the ``EMBEDDING`` callback on entry; call the yielded ``finish(vectors)`` with
    the vectors of ``chunks`` to close the callback event and send ``EmbeddingEndEvent`` (after the block, as
    ``BaseEmbedding`` does). An error in the block sends no end event and propagates."""
    dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
    done: list[list[list[float]]] = []
    with callback_manager.event(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}) as event:

        def finish(vectors: Iterable[Iterable[float]]) -> None:
            embeddings = [[float(x) for x in v] for v in vectors]
            event.on_end(payload={EventPayload.CHUNKS: chunks, EventPayload.EMBEDDINGS: embeddings})
            done.append(embeddings)

        yield finish
    if done:
        dispatcher.event(EmbeddingEndEvent(chunks=chunks, embeddings=done[0]))

"""LlamaIndex's own ``HyDEQueryTransform``, recognised: the passages it writes are encoded with ReasonIR's DOCUMENT
prefix, however the transform is composed.

``HyDEQueryTransform`` returns its hypothetical passage among a ``QueryBundle``'s ``custom_embedding_strs`` (with the
question after it when ``include_original``), the strings LlamaIndex's retrievers embed with
``get_query_embedding``: the QUERY prefix. ReasonIR's query and document prefixes differ, and a HyDE passage is a
document (ReasonIR's rule, the core's ``Query(text, prefix_kind="document")``); encoded as a query it lands in the
wrong place, silently. The bundle itself does not say which strings are passages (``FeedbackQueryTransform`` puts a
question there).

Every query transform's ``_run`` is a LlamaIndex instrumentation span (``DispatcherSpanMixin``), so a span handler
on the root dispatcher sees each ``HyDEQueryTransform`` finish, with its input and its result: the strings it added
(everything but the input's own ``embedding_strs``) are noted here, the last :data:`REMEMBERED` of them.
:class:`~llama_index.embeddings.reasonir.ReasonIREmbedding` embeds a noted passage with the document prefix when it
is asked for a query embedding (``VectorIndexRetriever``, ``index.as_retriever()``), and ``ReasonIRRetriever`` searches
it with the document prefix; both average it with the question's query vector as LlamaIndex does. The handler is
installed once, when this package is imported, and does nothing for any other span.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import OrderedDict
from typing import Any

from llama_index.core.indices.query.query_transform.base import HyDEQueryTransform
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span_handlers import NullSpanHandler
from llama_index.core.schema import QueryBundle

logger = logging.getLogger(__name__)

REMEMBERED = 1024  # passages noted at a time (the newest); a HyDE bundle is used right after it is made

_LOCK = threading.Lock()
_PASSAGES: OrderedDict[str, None] = OrderedDict()


def note_hyde_output(before: QueryBundle | None, after: Any) -> list[str]:
    """Note the passages a HyDE transform added to ``after`` (a ``QueryBundle``) beyond ``before``'s own embedding
    strings; returns them."""
    if not isinstance(after, QueryBundle) or not after.custom_embedding_strs:
        return []
    own = set(before.embedding_strs) if isinstance(before, QueryBundle) else set()
    passages = [s for s in after.custom_embedding_strs if isinstance(s, str) and s.strip() and s not in own]
    with _LOCK:
        for text in passages:
            _PASSAGES[text] = None
            _PASSAGES.move_to_end(text)
        while len(_PASSAGES) > REMEMBERED:
            _PASSAGES.popitem(last=False)
    return passages


def is_hyde_passage(text: Any) -> bool:
    """Whether ``text`` is a passage that LlamaIndex's ``HyDEQueryTransform`` wrote (it wants the document prefix)."""
    if not isinstance(text, str):
        return False
    with _LOCK:
        return text in _PASSAGES


class HyDEWatcher(NullSpanHandler):
    """Notes what each ``HyDEQueryTransform._run`` span returns (see the module docstring); keeps no spans."""

    @classmethod
    def class_name(cls) -> str:
        return "ReasonIRHyDEWatcher"

    def span_exit(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                  result: Any | None = None, **kwargs: Any) -> None:
        if isinstance(instance, HyDEQueryTransform) and isinstance(result, QueryBundle):
            passages = note_hyde_output(bound_args.arguments.get("query_bundle"), result)
            logger.debug("HyDEQueryTransform wrote %d passage(s): they get the document prefix", len(passages))


def install() -> HyDEWatcher:
    """Add the watcher to LlamaIndex's root dispatcher, once per process; returns it."""
    root = get_dispatcher()
    with _LOCK:
        for handler in root.span_handlers:
            if isinstance(handler, HyDEWatcher):
                return handler
        watcher = HyDEWatcher()
        root.add_span_handler(watcher)
        return watcher

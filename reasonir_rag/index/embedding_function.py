"""ReasonIR as a chromadb embedding function, for code that uses chromadb directly instead of :class:`ChromaStore`.

:class:`ReasonIREmbeddingFunction` embeds documents with the encoder's document prefix (``__call__``: what
``collection.add(documents=...)`` calls) and queries with the query instruction or a BRIGHT task's
(``embed_query``: what ``collection.query(query_texts=...)`` calls). It is registered with chromadb under the name
``"reasonir"``; its config is the encoder's load spec and fingerprint, so a persisted collection remembers it:
``client.get_collection(name)`` rebuilds the same encoder (once per process) and refuses one that loads with
another fingerprint. chromadb itself compares embedding functions by name only, so open collections with
:func:`get_or_create_collection` / :func:`get_collection` here: a collection made by another encoder (through
this function or through :class:`ChromaStore`) is refused with the :class:`EncoderMismatchError` the store raises,
and new collections get cosine distance and the fingerprint in their metadata, so :class:`ChromaStore` opens them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import EncoderMismatchError, InvalidInputError
from reasonir_rag.index.collections import EMBEDDING_FUNCTION_NAME, FINGERPRINT_KEY, check_collection
from reasonir_rag.protocols import Encoder

try:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError:  # the install hint
    require("chromadb")
    raise

logger = logging.getLogger(__name__)


def _plain(fingerprint: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(fingerprint, sort_keys=True)))


@register_embedding_function
class ReasonIREmbeddingFunction(EmbeddingFunction[Documents]):
    """A chromadb ``EmbeddingFunction`` over any :class:`~reasonir_rag.protocols.Encoder`, or over the encoder a name
    loads (default ``"reasonir"``: ReasonIR-8B, loaded once per process).

    ``instruction`` (a custom query instruction) or ``task`` (a BRIGHT task's) shapes ``embed_query``; documents
    always get the encoder's document prefix. Both are part of the persisted config.
    """

    def __init__(self, encoder: Encoder | str = "reasonir", *, instruction: str | None = None,
                 task: str | None = None) -> None:
        # a name from_pretrained knows ("reasonir", "minilm", a folder) or openai:MODEL@URL
        loaded: Encoder = _load(encoder, {}) if isinstance(encoder, str) else encoder
        if not hasattr(loaded, "encode_documents") or not hasattr(loaded, "fingerprint"):
            raise InvalidInputError(f"encoder must be a reasonir_rag Encoder or its name, got {type(encoder).__name__}")
        if instruction is not None and task is not None:
            raise InvalidInputError("give either instruction= or task=, not both")
        self.encoder = loaded
        self.instruction = instruction
        self.task = task

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.encoder.encode_documents(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        return list(self.encoder.encode_queries(list(input), instruction=self.instruction, task=self.task))

    @property
    def fingerprint(self) -> dict[str, Any]:
        return _plain(self.encoder.fingerprint)

    @staticmethod
    def name() -> str:
        return EMBEDDING_FUNCTION_NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]  # scores are 1 - cosine distance, as in ChromaStore

    def is_legacy(self) -> bool:
        return False  # chromadb's own test rebuilds from the config: a model load; this one is never legacy

    def get_config(self) -> dict[str, Any]:
        spec = getattr(self.encoder, "load_spec", None)
        name, kwargs = spec() if callable(spec) else (None, {})
        return {"encoder": name, "encoder_kwargs": dict(kwargs), "fingerprint": self.fingerprint,
                "instruction": self.instruction, "task": self.task}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ReasonIREmbeddingFunction:
        """The encoder the config names (loaded once per process), refused when it loads with another fingerprint."""
        name = config.get("encoder")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(
                "this collection's ReasonIR embedding function has no load spec (its encoder was not one the "
                "project can load by name); open it with embedding_function=ReasonIREmbeddingFunction(encoder)"
            )
        encoder = _load(name, dict(config.get("encoder_kwargs") or {}))
        recorded = config.get("fingerprint")
        if isinstance(recorded, dict) and _plain(encoder.fingerprint) != recorded:
            raise EncoderMismatchError(
                f"the collection was indexed with encoder {recorded}, but {name!r} now loads as "
                f"{_plain(encoder.fingerprint)}; load the encoder it was built with"
            )
        return ReasonIREmbeddingFunction(encoder, instruction=config.get("instruction"), task=config.get("task"))

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("fingerprint") != new_config.get("fingerprint"):
            raise EncoderMismatchError(
                f"the collection was indexed with encoder {old_config.get('fingerprint')}; an embedding function "
                f"with encoder {new_config.get('fingerprint')} cannot replace it"
            )


def _load(name: str, kwargs: dict[str, Any]) -> Any:
    if name.startswith("openai:"):
        from reasonir_rag.encoding.served import from_spec

        return from_spec(name, **kwargs)
    from reasonir_rag.encoding.encoder import shared_encoder

    return shared_encoder(name, **kwargs)


def get_or_create_collection(client: Any, name: str, embedding_function: ReasonIREmbeddingFunction,
                             **kwargs: Any) -> Any:
    """``client.get_or_create_collection`` with cosine distance and the encoder fingerprint recorded; an existing
    collection made by another encoder raises :class:`EncoderMismatchError` (as :class:`ChromaStore` does)."""
    metadata = {**(kwargs.pop("metadata", None) or {}),
                FINGERPRINT_KEY: json.dumps(embedding_function.fingerprint, sort_keys=True)}
    configuration = {"hnsw": {"space": "cosine"}, **(kwargs.pop("configuration", None) or {})}
    col = client.get_or_create_collection(name, embedding_function=embedding_function, metadata=metadata,
                                          configuration=configuration, **kwargs)
    check_collection(col, name, embedding_function.fingerprint)
    return col


def get_collection(client: Any, name: str, embedding_function: ReasonIREmbeddingFunction | None = None) -> Any:
    """``client.get_collection``, checked: with ``embedding_function`` its encoder must be the collection's; without
    one, the persisted ReasonIR embedding function is rebuilt (:meth:`ReasonIREmbeddingFunction.build_from_config`)."""
    if embedding_function is None:
        col = client.get_collection(name, embedding_function=None)
        persisted = (col.configuration_json or {}).get("embedding_function") or {}
        if persisted.get("name") != EMBEDDING_FUNCTION_NAME:
            raise InvalidInputError(f"collection {name!r} has no ReasonIR embedding function recorded; "
                                    "pass embedding_function=ReasonIREmbeddingFunction(encoder)")
        ef = ReasonIREmbeddingFunction.build_from_config(persisted.get("config") or {})  # a mismatch fails now
        check_collection(col, name, ef.fingerprint)
        return client.get_collection(name, embedding_function=ef)
    col = client.get_collection(name, embedding_function=embedding_function)
    check_collection(col, name, embedding_function.fingerprint)
    return col

"""ReasonIR as a LlamaIndex ``BaseEmbedding``: queries get the instruction prefix, texts the document prefix.

Only types are translated here; prompts, batching and pooling live in
:class:`reasonir_rag.encoding.encoder.ReasonIREncoder`.

The loaded encoder sits in a private attribute that is never pickled nor serialised: a pickled (or JSON) copy
carries only how to load it (``model_name`` + ``model_kwargs``). Unpickled in the same process it reuses the very
same encoder; in another process (an ``IngestionPipeline`` worker) it loads once per process through
:func:`reasonir_rag.encoding.encoder.shared_encoder`, lazily at first use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import threading
import uuid
import weakref
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import BaseModel, Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from reasonir_rag.encoding.encoder import DEFAULT_MODEL, ReasonIREncoder, shared_encoder, validate_texts
from reasonir_rag.encoding.habits import note_ineffective, translate_habits
from reasonir_rag.encoding.instructions import resolve_task

from llama_index.embeddings.reasonir import hyde

logger = logging.getLogger(__name__)

hyde.install()  # LlamaIndex's HyDEQueryTransform: its passages are noted, to get the document prefix

DEFAULT_EMBED_BATCH_SIZE = 256  # texts handed to the core per call; it length-sorts them into token-budget batches

# Encoders alive in this process, by handle: an unpickled copy made in the same process reuses the object
# instead of loading the weights again. Keyed with the PID so a forked child never reuses a parent's
# (possibly CUDA) model.
_LIVE: weakref.WeakValueDictionary[str, ReasonIREncoder] = weakref.WeakValueDictionary()
_LIVE_LOCK = threading.Lock()


def _handle_of(encoder: ReasonIREncoder) -> str:
    with _LIVE_LOCK:
        for handle, live in list(_LIVE.items()):
            if live is encoder:
                return handle
        handle = f"{os.getpid()}:{uuid.uuid4().hex}"
        _LIVE[handle] = encoder
        return handle


def _live(handle: str | None) -> ReasonIREncoder | None:
    if not handle or not handle.startswith(f"{os.getpid()}:"):
        return None
    with _LIVE_LOCK:
        return _LIVE.get(handle)


class ReasonIREmbedding(BaseEmbedding):
    """ReasonIR (or any preset of :class:`~reasonir_rag.encoding.encoder.ReasonIREncoder`) for LlamaIndex.

    ``get_query_embedding`` uses ReasonIR's query prefix with ``task`` (a BRIGHT task) or ``instruction``;
    ``get_text_embedding(s)`` use the document prefix. Pass a loaded ``encoder=`` or a ``model_name``
    (a hub id, a local folder, or ``"minilm"``) with ``model_kwargs`` for ``ReasonIREncoder.from_pretrained``;
    ``preset=`` (``"reasonir"``, ``"minilm"``) is that loading argument, as in LangChain's ``ReasonIREmbeddings``.

    ``HuggingFaceEmbedding``'s arguments mean what they mean there: ``device``, ``max_length``, ``batch_size``
    (texts per forward pass), ``trust_remote_code``, ``text_instruction`` (the document prefix) and
    ``query_instruction`` (the instruction) are honoured; ``normalize=True`` is what always happens and
    ``normalize=False``, ``cache_folder`` are refused by name; any other unknown argument raises a TypeError.
    An ``instruction`` / ``task`` that changes nothing for the encoder (the ``minilm`` preset) is logged once.

    A passage that LlamaIndex's ``HyDEQueryTransform`` wrote is embedded with the document prefix even when it is
    asked for as a query (``VectorIndexRetriever`` embeds ``custom_embedding_strs`` that way): see
    :mod:`llama_index.embeddings.reasonir.hyde`.
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="Hub id, local folder or 'minilm' to load.")
    task: str | None = Field(default=None, description="BRIGHT task whose instruction prefixes queries.")
    instruction: str | None = Field(default=None, description="Query instruction (instead of task).")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of ReasonIREncoder.from_pretrained (preset, device...).")
    embed_batch_size: int = Field(default=DEFAULT_EMBED_BATCH_SIZE, gt=0, le=2048,
                                  description="Texts per call to the core encoder, which batches by tokens.")

    _encoder: ReasonIREncoder | None = PrivateAttr(default=None)
    _handle: str | None = PrivateAttr(default=None)
    _load_lock: Any = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        model_name: str | None = None,
        *,
        encoder: ReasonIREncoder | None = None,
        preset: str | None = None,
        task: str | None = None,
        instruction: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        callback_manager: CallbackManager | None = None,
        num_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        base_fields = set(BaseEmbedding.model_fields) - {"model_name", "embed_batch_size"}
        load, query, unknown = translate_habits({k: v for k, v in kwargs.items() if k not in base_fields},
                                                where="ReasonIREmbedding")
        if unknown:
            raise TypeError(f"ReasonIREmbedding got unexpected argument(s) {sorted(unknown)}; it takes model_name, "
                            "encoder, preset, task, instruction, model_kwargs, embed_batch_size, the HuggingFace-style "
                            "device, max_length, batch_size, trust_remote_code, text_instruction, "
                            "query_instruction, normalize=True, and BaseEmbedding's own")
        kwargs = {k: v for k, v in kwargs.items() if k in base_fields}
        if preset is not None:  # LangChain's ReasonIREmbeddings(preset=...): a loading setting like the others
            load = {**load, "preset": preset}
            if model_name is None and preset == "minilm":
                model_name = "minilm"
        if "instruction" in query:
            if instruction is not None and instruction != query["instruction"]:
                raise ValueError("pass instruction= or query_instruction=, not both")
            instruction = query["instruction"]
        clash = sorted(k for k in load if k in (model_kwargs or {}) and (model_kwargs or {})[k] != load[k])
        if clash:
            raise ValueError(f"{clash} given both as arguments and in model_kwargs; give each once")
        model_kwargs = {**(model_kwargs or {}), **load}
        if encoder is not None and model_kwargs:
            raise ValueError(f"pass either encoder= (already loaded) or loading settings {sorted(model_kwargs)}, "
                             "not both: the settings would not reach a loaded encoder")
        if encoder is not None and not isinstance(encoder, ReasonIREncoder):
            raise TypeError(f"encoder must be a reasonir_rag ReasonIREncoder, got {type(encoder).__name__}; "
                            "pass a model name as model_name= instead")
        if task is not None and instruction is not None:
            raise ValueError("pass instruction= or task=, not both")
        if task is not None:
            resolve_task(task)  # an unknown task fails before any weights load
        if encoder is not None and model_name is None:
            model_name, model_kwargs = encoder.load_spec()
        super().__init__(
            model_name=model_name or DEFAULT_MODEL, task=task, instruction=instruction,
            model_kwargs=dict(model_kwargs), embed_batch_size=embed_batch_size,
            callback_manager=callback_manager, num_workers=num_workers, **kwargs,
        )
        self._encoder = encoder if encoder is not None else self._load()
        self._handle = _handle_of(self._encoder)
        note_ineffective(self._encoder, instruction=instruction, task=task, where="ReasonIREmbedding")

    @classmethod
    def class_name(cls) -> str:
        return "ReasonIREmbedding"

    # ------------------------------------------------------------------ the encoder
    @property
    def encoder(self) -> ReasonIREncoder:
        """The loaded core encoder (loaded at first use after unpickling)."""
        if self._encoder is None:
            with self._load_lock:
                if self._encoder is None:
                    self._encoder = _live(self._handle) or self._load()
                    self._handle = _handle_of(self._encoder)
        return self._encoder

    def _load(self) -> ReasonIREncoder:
        name = None if self.model_name == "minilm" else self.model_name
        kwargs = dict(self.model_kwargs)
        if self.model_name == "minilm":
            kwargs.setdefault("preset", "minilm")
        return shared_encoder(name, **kwargs)

    @property
    def query_prefix(self) -> str:
        """The exact text placed before every query."""
        return self.encoder.query_prefix(instruction=self.instruction, task=self.task)

    @property
    def document_prefix(self) -> str:
        """The exact text placed before every text (node) embedded for the index."""
        return self.encoder.document_prefix

    def to_payload(self) -> dict[str, Any]:
        return {**super().to_payload(), "task": self.task}

    # ------------------------------------------------------------------ pickling: never the weights
    def __getstate__(self) -> dict[str, Any]:
        state = dict(BaseModel.__getstate__(self))  # pydantic's: BaseComponent's would pickle the model to probe it
        private = dict(state.get("__pydantic_private__") or {})
        if private.get("_encoder") is not None:
            private["_handle"] = _handle_of(private["_encoder"])
        private["_encoder"] = None
        private.pop("_load_lock", None)
        state["__pydantic_private__"] = private
        fields = dict(state["__dict__"])
        for key, value in list(fields.items()):  # as BaseComponent does: drop what cannot be pickled
            try:
                pickle.dumps(value)
            except Exception:
                logger.warning("ReasonIREmbedding: attribute %r cannot be pickled and is left out", key)
                del fields[key]
        state["__dict__"] = fields
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        fields = dict(state["__dict__"])
        fields.setdefault("callback_manager", CallbackManager([]))
        private = {**(state.get("__pydantic_private__") or {}), "_load_lock": threading.Lock()}
        # pydantic's: BaseComponent's re-runs __init__, which would load the encoder eagerly
        BaseModel.__setstate__(self, {**state, "__dict__": fields, "__pydantic_private__": private})

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ReasonIREmbedding:
        memo = {} if memo is None else memo
        if self._encoder is not None:
            memo[id(self._encoder)] = self._encoder  # copies share the weights
        memo[id(self._load_lock)] = threading.Lock()
        return super().__deepcopy__(memo)

    # ------------------------------------------------------------------ LlamaIndex hooks
    def _get_query_embedding(self, query: str) -> Embedding:
        if hyde.is_hyde_passage(query):  # LlamaIndex's HyDEQueryTransform wrote it: a passage, the document prefix
            return self.encoder.encode_documents([query])[0].tolist()
        return self.encoder.encode_queries([query], instruction=self.instruction, task=self.task)[0].tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        """:meth:`_get_query_embedding` (the HyDE rule included) in a worker thread: local compute."""
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self.encoder.encode_documents([text])[0].tolist()

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self.encoder.aencode_documents([text]))[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.encoder.encode_documents(texts).tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return (await self.encoder.aencode_documents(texts)).tolist()

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        """All texts are checked first (one error naming every bad item), then embedded in chunks."""
        items = validate_texts(texts, "texts")
        return super().get_text_embedding_batch(items, show_progress=show_progress, **kwargs)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any,
    ) -> list[Embedding]:
        items = validate_texts(texts, "texts")
        return await super().aget_text_embedding_batch(items, show_progress=show_progress, **kwargs)

"""ReasonIR embeddings as a LangChain ``Embeddings``: documents and queries get their own prefixes.

Everything model-related (prompts, pooling, batching, truncation, input checks) is the core
:class:`~reasonir_rag.encoding.encoder.ReasonIREncoder`'s; this class only translates numpy rows into lists of floats.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from reasonir_rag.encoding.encoder import shared_encoder
from reasonir_rag.encoding.habits import note_ineffective, translate_habits
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.protocols import TokenizingEncoder

from langchain_reasonir.rewriters import prefix_kind_of

logger = logging.getLogger(__name__)

_ENCODER_METHODS = ("encode_queries", "encode_documents", "query_prefix")


class ReasonIREmbeddings(BaseModel, Embeddings):
    """Embed with ReasonIR: ``embed_documents`` uses the document prefix, ``embed_query`` the query prefix
    with an instruction (``task=`` picks a BRIGHT task's own instruction, which ReasonIR needs for its numbers).

    Pass an already loaded ``encoder``, or let the class load one from ``model_name`` / ``preset`` / ``device``
    / ``model_kwargs``. ``HuggingFaceEmbeddings``' habits work: ``model_kwargs={"device": "cpu"}``,
    ``encode_kwargs={"normalize_embeddings": True, "batch_size": 16}`` (vectors are always normalised;
    ``False`` is refused), and ``query_instruction``, ``max_length``, ``batch_size``, ``show_progress``,
    ``trust_remote_code``, ``text_instruction`` as arguments; other unknown arguments raise. An ``instruction``
    / ``task`` that changes nothing for the encoder (the ``minilm`` preset) is logged once. Loaded encoders
    are shared per process
    (:func:`reasonir_rag.encoding.encoder.shared_encoder`), so several instances, and unpickled copies, reuse the
    same weights.

    Example:
        .. code-block:: python

            from langchain_chroma import Chroma
            from langchain_reasonir import ReasonIREmbeddings

            embeddings = ReasonIREmbeddings(preset="minilm")  # default: reasonir/ReasonIR-8B
            store = Chroma("docs", embedding_function=embeddings)
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)

    encoder: TokenizingEncoder | None = Field(default=None, repr=False, exclude=True)
    """A loaded :class:`~reasonir_rag.encoding.encoder.ReasonIREncoder` (or any object with its encode methods)."""
    model_name: str | None = None
    """Hub id or local folder; None: ReasonIR-8B (or all-MiniLM-L6-v2 with ``preset="minilm"``)."""
    preset: str | None = None
    """``"reasonir"`` or ``"minilm"`` (see ``ReasonIREncoder.from_pretrained``)."""
    device: str | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More ``ReasonIREncoder.from_pretrained`` arguments (``dtype``, ``max_length``, ``batch_size``, ``cache``...)."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments for every encode call (``show_progress``); checked against the core's signature."""
    instruction: str | None = None
    """Default instruction for queries (None: the encoder's default)."""
    task: str | None = None
    """Default BRIGHT task for queries (e.g. ``"biology"``, ``"aops"``, ``"biology:long"``)."""

    _loaded_here: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _habits(cls, data: Any) -> Any:
        """HuggingFace-style arguments into this class's own fields (the rest is refused by pydantic, by name)."""
        if not isinstance(data, dict):
            return data
        fields = set(cls.model_fields)
        load, query, rest = translate_habits({k: v for k, v in data.items() if k not in fields},
                                             where="ReasonIREmbeddings")
        encode = dict(data.get("encode_kwargs") or {})
        progress = {k: encode.pop(k) for k in ("show_progress",) if k in encode}
        encode_load, _, encode_rest = translate_habits(encode, where="ReasonIREmbeddings encode_kwargs")
        out = {k: v for k, v in data.items() if k in fields}
        if "encode_kwargs" in data:
            out["encode_kwargs"] = {**encode_rest, **progress}
        model_kwargs = dict(data.get("model_kwargs") or {})
        for key, value in {**encode_load, **load}.items():
            if key in model_kwargs and model_kwargs[key] != value:
                raise ValueError(f"{key} is given twice with different values ({model_kwargs[key]!r}, {value!r})")
            model_kwargs[key] = value
        if "device" in model_kwargs:  # HuggingFaceEmbeddings' place for it; this class has a field
            device = model_kwargs.pop("device")
            if out.get("device") not in (None, device):
                raise ValueError(f"device={out['device']!r} and model_kwargs['device']={device!r} differ")
            out["device"] = device
        if model_kwargs or "model_kwargs" in data:
            out["model_kwargs"] = model_kwargs
        if "instruction" in query:
            if out.get("instruction") not in (None, query["instruction"]):
                raise ValueError("pass instruction= or query_instruction=, not both")
            out["instruction"] = query["instruction"]
        return {**out, **rest}

    @field_validator("encoder", mode="before")
    @classmethod
    def _check_encoder(cls, value: Any) -> Any:
        missing = [m for m in _ENCODER_METHODS if not callable(getattr(value, m, None))]
        if value is not None and missing:
            raise TypeError(f"encoder must be a ReasonIREncoder; {type(value).__name__} lacks {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _load_encoder(self) -> ReasonIREmbeddings:
        if self.encoder is not None:
            if self.model_name is not None or self.preset is not None or self.device is not None or self.model_kwargs:
                raise ValueError("pass either encoder= or model_name=/preset=/device=/model_kwargs=, not both")
        else:
            self.encoder = self._shared()
            self._loaded_here = True
        for method in ("encode_queries", "encode_documents"):
            allowed = set(inspect.signature(getattr(self.encoder, method)).parameters) - {"texts", "instruction",
                                                                                          "task"}
            unknown = sorted(set(self.encode_kwargs) - allowed)
            if unknown:
                raise ValueError(f"encode_kwargs {unknown} are not accepted by {method}(); it takes "
                                 f"{sorted(allowed) or 'none'}, plus HuggingFace's normalize_embeddings=True and "
                                 "batch_size (other loading settings go in model_kwargs)")
        # an unknown task, or task with instruction, fails now rather than at the first query
        self.encoder.query_prefix(instruction=self.instruction, task=self.task)
        note_ineffective(self.encoder, instruction=self.instruction, task=self.task, where="ReasonIREmbeddings")
        return self

    def _shared(self) -> Any:
        return shared_encoder(self.model_name, preset=self.preset, device=self.device, **self.model_kwargs)

    # ------------------------------------------------------------------ LangChain Embeddings
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Document vectors (document prefix), in input order."""
        return self._model().encode_documents(_as_list(texts), **self.encode_kwargs).tolist()

    def embed_query(self, text: str, *, task: str | None = None, instruction: str | None = None) -> list[float]:
        """One query vector (query prefix); ``task`` / ``instruction`` override the instance's defaults. A HyDE
        rewrite from :class:`~langchain_reasonir.ReasonIRQueryRewriter` is a passage: it gets the document prefix."""
        if prefix_kind_of(text) == "document":
            return self._model().encode_documents([_one(text)], **self.encode_kwargs)[0].tolist()
        return self._model().encode_queries([_one(text)], **self._query_kwargs(task, instruction))[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread: the event loop keeps serving while the model runs."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str, *, task: str | None = None,
                           instruction: str | None = None) -> list[float]:
        """:meth:`embed_query` in a worker thread."""
        return await asyncio.to_thread(self.embed_query, text, task=task, instruction=instruction)

    def _model(self) -> TokenizingEncoder:
        assert self.encoder is not None  # the validator loads one when none is given
        return self.encoder

    def _query_kwargs(self, task: str | None, instruction: str | None) -> dict[str, Any]:
        if task is None and instruction is None:
            task, instruction = self.task, self.instruction
        return {"task": task, "instruction": instruction}

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle the settings, not the weights: the copy reloads them through ``shared_encoder``."""
        if not self._loaded_here:
            raise TypeError("a ReasonIREmbeddings built from an encoder object cannot be pickled (the weights would "
                            "be copied); build it with model_name=/preset=/device= instead")
        state = super().__getstate__()
        state["__dict__"] = {**state["__dict__"], "encoder": None}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.encoder = self._shared()
        self._loaded_here = True


def _one(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"embed_query takes one string, got {type(text).__name__}"
                                + ("; use embed_documents for a list" if isinstance(text, (list, tuple)) else ""))
    return text


def _as_list(texts: Any) -> Any:
    if isinstance(texts, str):
        raise InvalidInputError("embed_documents takes a list of strings, got one str; use embed_query for a query "
                                "or wrap it in a list")
    return texts

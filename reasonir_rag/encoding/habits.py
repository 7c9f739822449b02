"""The arguments users bring from the ecosystems' own embeddings classes (``HuggingFaceEmbeddings``,
``HuggingFaceEmbedding``), honoured or refused by name, and the settings that do nothing for an encoder, said once.

Both framework packages call :func:`translate_habits` before loading and :func:`note_ineffective` after, so the
two accept the same names with the same meaning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger(__name__)

# HuggingFace-style name -> ReasonIREncoder.from_pretrained argument
LOAD_NAMES = {"device": "device", "max_length": "max_length", "max_seq_length": "max_length",
              "batch_size": "batch_size", "trust_remote_code": "trust_remote_code",
              "text_instruction": "document_prefix", "embed_instruction": "document_prefix",
              "show_progress": "show_progress", "revision": "revision"}
# HuggingFace-style name -> the query setting
QUERY_NAMES = {"query_instruction": "instruction"}
_NORMALISE = ("normalize", "normalize_embeddings")
_REFUSED = {
    "cache_folder": "models load from a local folder or the Hugging Face cache offline; set HF_HOME to move it",
    "multi_process": "use devices=[...] in model_kwargs for one replica per device",
    "prompts": "use instruction= / task= for queries (documents get the encoder's document prefix)",
    "default_prompt_name": "use instruction= / task= for queries",
}

_said: set[tuple[int, str]] = set()
_said_lock = threading.Lock()


Split = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


def translate_habits(settings: Mapping[str, Any], *, where: str) -> Split:
    """``settings`` as (loading arguments, query settings, what is left for the caller to refuse as unknown).

    ``normalize`` / ``normalize_embeddings=True`` is accepted (vectors are always L2-normalised, as cosine search
    needs) and ``False`` refused; ``cache_folder`` and the like are refused with what to use instead.
    """
    load: dict[str, Any] = {}
    query: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for name, value in settings.items():
        if name in _NORMALISE:
            if value is not True:
                raise InvalidInputError(f"{where}: {name}={value!r} is not possible: ReasonIR vectors are always "
                                        "L2-normalised (the stores search by cosine)")
        elif name in _REFUSED:
            raise InvalidInputError(f"{where}: {name}= is not supported: {_REFUSED[name]}")
        elif name in LOAD_NAMES:
            _put(load, LOAD_NAMES[name], value, where, name)
        elif name in QUERY_NAMES:
            _put(query, QUERY_NAMES[name], value, where, name)
        else:
            rest[name] = value
    return load, query, rest


def _put(target: dict[str, Any], key: str, value: Any, where: str, name: str) -> None:
    if key in target and target[key] != value:
        raise InvalidInputError(f"{where}: {name}={value!r} contradicts {key}={target[key]!r}; give one")
    target[key] = value


def note_ineffective(encoder: Any, *, instruction: str | None, task: str | None, where: str) -> None:
    """One warning per encoder and setting when ``instruction`` / ``task`` change nothing (e.g. the ``minilm``
    preset, whose queries carry no instruction)."""
    if (instruction is None and task is None) or instruction == "":
        return
    prefix = encoder.query_prefix(instruction=instruction, task=task)
    if prefix != "":
        return
    setting = f"task={task!r}" if task is not None else f"instruction={instruction!r}"
    key = (id(encoder), setting)
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    logger.warning("%s: %s has no effect with %s: its queries carry no instruction prefix", where, setting,
                   getattr(getattr(encoder, "config", None), "name", type(encoder).__name__))

"""What defines an encoder's embeddings, and how a name picks a preset: one place for both encoder backends.

The local :class:`~reasonir_rag.encoding.encoder.ReasonIREncoder` and the served
:class:`~reasonir_rag.encoding.served.OpenAIEmbeddingsEncoder` build the same :class:`EncoderConfig` from the
same presets, and describe themselves to an index with the same fingerprint keys, so an index built by one can
be checked against the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasonir_rag.encoding.instructions import DEFAULT_INSTRUCTION, DOCUMENT_PREFIX, QUERY_TEMPLATE
from reasonir_rag.errors import InvalidInputError

DEFAULT_MODEL = "reasonir/ReasonIR-8B"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderConfig:
    """What defines the embeddings a model produces (the parts that must match between index and query)."""

    name: str
    preset: str
    query_template: str  # "" when the model takes no query instruction
    document_prefix: str
    default_instruction: str
    pool_prefix: bool  # True: the mean includes the prefix and special tokens (sentence-transformers)
    max_length: int
    # True (ReasonIR/GritLM): one string ``prefix + text`` tokenized with the special tokens, the first
    # ``len(tokenizer(prefix, add_special_tokens=True))`` positions not pooled (none for an empty prefix).
    # False (sentence-transformers): prefix ids and text ids tokenized apart and joined.
    joint_tokens: bool = True


PRESETS: dict[str, dict[str, Any]] = {
    "reasonir": dict(
        query_template=QUERY_TEMPLATE,
        document_prefix=DOCUMENT_PREFIX,
        default_instruction=DEFAULT_INSTRUCTION,
        pool_prefix=False,
        max_length=2048,
        joint_tokens=True,
    ),
    "minilm": dict(query_template="", document_prefix="", default_instruction="", pool_prefix=True, max_length=256,
                   joint_tokens=False),
}


def check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise InvalidInputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")


def resolve_name(name_or_path: str | None, preset: str | None) -> tuple[str, str, bool]:
    """``(preset, model name, whether it is the bundled MiniLM)`` for what ``from_pretrained`` was given:
    ``"reasonir"`` / ``"minilm"`` name the presets' own models; anything else is a hub id or a folder."""
    if name_or_path in PRESETS and preset in (None, name_or_path):  # "reasonir" / "minilm": the presets' models
        preset, name_or_path = name_or_path, None
    if preset is None:
        preset = "reasonir"
    check_preset(preset)
    if preset == "minilm" and name_or_path in (None, "minilm"):
        return preset, MINILM_NAME, True
    return preset, name_or_path or DEFAULT_MODEL, False


def preset_settings(preset: str, max_length: int | None = None, document_prefix: str | None = None) -> dict[str, Any]:
    """A preset's :class:`EncoderConfig` fields (all but name and preset), ``max_length`` and ``document_prefix``
    (the exact text placed before every document; ``""``: none, GritLM's ``encode(instruction="")``) overriding
    its own."""
    check_preset(preset)
    settings = dict(PRESETS[preset])
    if document_prefix is not None:
        if not isinstance(document_prefix, str):
            raise InvalidInputError(f"document_prefix must be a string, got {type(document_prefix).__name__}")
        settings["document_prefix"] = document_prefix
    if max_length is not None:
        if max_length < 8:
            raise InvalidInputError(f"max_length must be >= 8, got {max_length}")
        settings["max_length"] = max_length
    return settings


def spec_overrides(config: EncoderConfig) -> dict[str, Any]:
    """The settings a load spec must carry besides the preset: ``max_length`` and ``document_prefix`` where they
    are not the preset's."""
    overrides: dict[str, Any] = {}
    if config.max_length != PRESETS[config.preset]["max_length"]:
        overrides["max_length"] = config.max_length
    if config.document_prefix != PRESETS[config.preset]["document_prefix"]:
        overrides["document_prefix"] = config.document_prefix
    return overrides


def encoder_fingerprint(config: EncoderConfig, *, weights: str, dim: int, pooling: str) -> dict[str, Any]:
    """What an index must agree on with the encoder that queries it (``document_prefix`` is ``""`` for a store of
    documents encoded without an instruction: such a store is never searched with the default prefix)."""
    return {
        "model": config.name,
        "weights": weights,
        "dim": dim,
        "query_template": config.query_template,
        "document_prefix": config.document_prefix,
        "pooling": pooling,
    }

"""What a bulk run's actors build their encoder from: a picklable *spec*, never weights shipped by the driver.

A spec is ``("path/or/hub-id", {kwargs})`` as :meth:`ReasonIREncoder.load_spec` returns, ``"openai:MODEL@URL"``
for a served model (:mod:`reasonir_rag.encoding.served`), or a picklable zero-argument factory. Each actor
process loads its model once from it.
"""

from __future__ import annotations

from typing import Any

from reasonir_rag.errors import InvalidInputError

EncoderSpec = Any  # (name_or_path, kwargs) | str | Callable[[], encoder]


def load_encoder(spec: EncoderSpec, *, device: str | None = None) -> Any:
    """Build the encoder a spec names (inside an actor: each process loads its own model once)."""
    if callable(spec) and not isinstance(spec, (str, tuple, list)):
        return spec()
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1] or {}))
    if isinstance(name, str) and name.startswith("openai:"):
        from reasonir_rag.encoding.served import from_spec

        return from_spec(name, **kwargs)
    from reasonir_rag.encoding.encoder import shared_encoder

    if device is not None:
        kwargs.setdefault("device", device)
    return shared_encoder(name, **kwargs)


def portable_spec(spec: EncoderSpec) -> EncoderSpec:
    """A spec the actors can rebuild from: an encoder object becomes its own ``load_spec()``."""
    if hasattr(spec, "load_spec") and hasattr(spec, "encode_documents"):
        return spec.load_spec()
    if isinstance(spec, (str, tuple, list)) or callable(spec):
        return spec
    raise InvalidInputError(
        f"encoder_spec must be (name_or_path, kwargs), a string, an encoder or a factory; got {spec!r}")

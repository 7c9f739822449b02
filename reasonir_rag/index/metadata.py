"""The metadata type policy: each value becomes one Chroma can hold and filter, or the record is rejected.

Chroma (>= 1.5) stores str, int, float, bool and non-empty lists of one of them; a ``where`` filter matches only
values of the type it names, so values are normalised before they are written:

* numpy scalars -> ``int`` / ``float`` / ``bool``; ``datetime``, ``date``, ``time`` -> ISO 8601 strings;
* lists, tuples and 1-d numpy arrays of one scalar type -> native lists (filter them with ``$contains``);
* dicts, nested or mixed-type lists -> a JSON string (logged once; Chroma cannot hold them natively);
* ``None`` and empty lists are dropped (logged once); integers beyond 64 bits become strings (logged once);
* errors that reject the record (naming the key and what was wrong): a key that is not a string, is empty,
  starts with ``$`` or ``chroma:``; a NaN or infinite float; a string with a lone surrogate (not UTF-8); a
  value of any other type.

Keys the store keeps for itself (``reasonir_*`` below) and keys starting with ``#`` (Chroma's own) are dropped
with a logged note. Records written before native lists (no ``FORMAT_KEY``) stored lists as JSON strings; reads
turn those back into lists (:func:`public_metadata`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

from reasonir_rag.errors import InvalidInputError

logger = logging.getLogger("reasonir_rag.index.store")  # its messages are the store's

HASH_KEY = "reasonir_text_sha256"
PARENT_KEY = "reasonir_parent_id"  # the document a chunk was cut from: re-indexing it replaces all its chunks
FORMAT_KEY = "reasonir_metadata_format"  # 2: lists stored natively; absent: lists were JSON strings
METADATA_FORMAT = 2
INTERNAL_KEYS = frozenset({HASH_KEY, PARENT_KEY, FORMAT_KEY})
_INT64 = 2**63
_SCALARS = (bool, int, float, str)


def _numpy_scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (numpy is not imported for that)."""
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _is_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "tolist") and getattr(value, "ndim", 0) >= 1


def check_utf8(what: str, text: str) -> None:
    """Chroma stores UTF-8: a lone surrogate (from a broken decode or ``\\ud800`` in JSON) cannot be stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} holds a lone surrogate at position {exc.start} (not valid UTF-8)") from exc


class MetadataNormaliser:
    """Applies the module's type policy to one record's metadata; logs each fallback kind once per store."""

    def __init__(self) -> None:
        self._logged: set[str] = set()

    def _once(self, kind: str, message: str) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            logger.info(message)

    def __call__(self, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        """The normalised metadata; :class:`InvalidInputError` naming the key when the record must be rejected."""
        if metadata is None:
            return {}
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
        clean: dict[str, Any] = {}
        for key, value in metadata.items():
            if not self._keep_key(key):
                continue
            value = self._value(key, value)
            if value is not None:
                clean[key] = value
        return clean

    def _keep_key(self, key: Any) -> bool:
        if not isinstance(key, str):
            raise InvalidInputError(f"metadata key {key!r} is a {type(key).__name__}, not a string")
        if not key:
            raise InvalidInputError("metadata key '' is empty (Chroma rejects it)")
        if key.startswith("$") or key.startswith("chroma:"):
            raise InvalidInputError(f"metadata key {key!r} starts with {key[0] if key[0] == '$' else 'chroma:'!r}, "
                                    "which Chroma reserves")
        check_utf8(f"metadata key {key!r}", key)
        if key in INTERNAL_KEYS or key.startswith("#"):
            self._once("reserved", f"metadata key {key!r} is reserved and was dropped")
            return False
        return True

    def _value(self, key: str, value: Any) -> Any:
        if value is None:
            self._once("none", "metadata values that are None are dropped (Chroma cannot store None)")
            return None
        if _is_array(value):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            return self._list(key, list(value))
        if isinstance(value, Mapping):
            return self._json(key, dict(value), "dict")
        return self._scalar(key, value)

    def _scalar(self, key: str, value: Any) -> Any:
        value = _numpy_scalar(value)
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return value.isoformat()
        if isinstance(value, bool):
            return value
        if isinstance(value, Integral):
            value = int(value)
            if not -_INT64 <= value < _INT64:
                self._once("bigint", "integers beyond 64 bits are stored as strings")
                return str(value)
            return value
        if isinstance(value, Real):
            value = float(value)
            if not math.isfinite(value):
                raise InvalidInputError(f"metadata {key!r} is {value} (NaN and infinite floats cannot be filtered)")
            return value
        if isinstance(value, str):
            check_utf8(f"metadata {key!r}", value)
            return value
        raise InvalidInputError(
            f"metadata {key!r} has a value of type {type(value).__name__}; the store takes str, int, float, bool, "
            "datetime, lists of one of them, and dicts (stored as JSON)"
        )

    def _list(self, key: str, items: list[Any]) -> Any:
        if not items:
            self._once("empty", "empty list metadata values are dropped (Chroma cannot store them)")
            return None
        if any(isinstance(i, (list, tuple, Mapping)) or _is_array(i) or i is None for i in items):
            return self._json(key, items, "nested or None-holding list")
        values = [self._scalar(key, i) for i in items]
        if len({type(v) for v in values}) == 1 and isinstance(values[0], _SCALARS):
            return values
        return self._json(key, values, "mixed-type list")

    def _json(self, key: str, value: Any, kind: str) -> str:
        self._once(kind, f"{kind} metadata values are stored as JSON strings (Chroma holds scalars and flat lists)")
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default(key))
        except ValueError as exc:
            raise InvalidInputError(f"metadata {key!r} holds a NaN or infinite float ({exc})") from exc
        check_utf8(f"metadata {key!r}", text)
        return text


def _json_default(key: str) -> Callable[[Any], Any]:
    def default(value: Any) -> Any:
        value = _numpy_scalar(value)
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return value.isoformat()
        if _is_array(value):
            return value.tolist()
        if isinstance(value, (bool, int, float, str)):
            return value
        raise InvalidInputError(f"metadata {key!r} holds a value of type {type(value).__name__}")

    return default


def public_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a caller sees: internal keys removed; a record from before native lists gets its lists back."""
    metadata = metadata or {}
    legacy = FORMAT_KEY not in metadata
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in INTERNAL_KEYS:
            continue
        if legacy and isinstance(value, str) and value.startswith("[") and value.endswith("]"):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = None
            if isinstance(decoded, list):
                value = decoded
        out[key] = value
    return out

"""Opening a Chroma collection for one encoder: created with cosine HNSW and the encoder's fingerprint, or refused.

Chroma never embeds anything here: collections are opened with ``embedding_function=None`` (chromadb 1.5 then
stores no embedding-function config and never instantiates its ONNX default). The collection metadata records
the encoder's fingerprint; a collection made by another model, prefix or pooling, one without a fingerprint
that already holds records, or one with another distance is refused with an error that says what to do. A
collection made by plain chromadb with :class:`~reasonir_rag.index.embedding_function.ReasonIREmbeddingFunction`
records the fingerprint in that embedding function's persisted config instead; it is checked the same way.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from reasonir_rag._deps import require
from reasonir_rag.errors import CollectionNotFoundError, EncoderMismatchError, InvalidInputError
from reasonir_rag.index.connection import ChromaConnection
from reasonir_rag.index.storage import storage_error

FINGERPRINT_KEY = "reasonir_fingerprint"
EMBEDDING_FUNCTION_NAME = "reasonir"  # the name ReasonIREmbeddingFunction is registered under in chromadb
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


def check_collection_name(name: Any) -> str:
    """``name`` when Chroma (1.5) accepts it as a collection name, else an error saying its rule; checked before
    any model loads or any folder is opened, so a typo costs nothing and leaves nothing behind."""
    rule = ("3-512 characters from [a-zA-Z0-9._-], starting and ending with a letter or digit, no '..', "
            "not an IPv4 address")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidInputError(f"invalid collection name {name!r}: Chroma needs {rule}")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise InvalidInputError(f"invalid collection name {name!r}: Chroma needs {rule}")


def recorded_fingerprint(col: Any) -> dict[str, Any] | None:
    """The fingerprint in the collection metadata, else in a persisted ReasonIR embedding-function config."""
    raw = (col.metadata or {}).get(FINGERPRINT_KEY)
    if raw:
        return dict(json.loads(raw))
    ef = (_configuration(col).get("embedding_function") or {})
    if ef.get("name") == EMBEDDING_FUNCTION_NAME and isinstance((ef.get("config") or {}).get("fingerprint"), dict):
        return dict(ef["config"]["fingerprint"])
    return None


def _configuration(col: Any) -> dict[str, Any]:
    """The raw configuration (``col.configuration`` would build the persisted embedding function: a model load)."""
    config = getattr(col, "configuration_json", None)
    return config if isinstance(config, dict) else {}


def stored_fingerprint(collection: str, connection: ChromaConnection | None = None) -> dict[str, Any] | None:
    """The encoder fingerprint recorded in ``collection`` (None when it has none). Raises
    :class:`CollectionNotFoundError` when the collection is missing."""
    connection = connection or ChromaConnection()
    client, where = connection.open()
    col = _get(client, collection, where, create=False, fingerprint=None, hint="", folder=connection.folder)
    return recorded_fingerprint(col)


def open_collection(client: Any, name: str, where: str, fingerprint: dict[str, Any], *, create: bool,
                    folder: Path | None = None) -> Any:
    """The collection ``name`` (created when missing and ``create``), checked against ``fingerprint``;
    ``folder``: the embedded folder, looked at when Chroma fails (read-only, full)."""
    col = _get(client, name, where, create=create, fingerprint=fingerprint, folder=folder,
               hint="; index documents into it first (reasonir-rag index ... --collection NAME)")
    check_collection(col, name, fingerprint)
    return col


def _get(client: Any, name: str, where: str, *, create: bool, fingerprint: dict[str, Any] | None, hint: str,
         folder: Path | None) -> Any:
    errors = require("chromadb.errors")
    try:
        if create:
            return client.get_or_create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True)},
            )
        return client.get_collection(name, embedding_function=None)
    except errors.NotFoundError as exc:
        raise CollectionNotFoundError(f"collection {name!r} does not exist at {where}{hint}") from exc
    except errors.ChromaError as exc:
        raise (storage_error(exc, where, folder, f"opening collection {name!r}")
               or InvalidInputError(f"cannot open collection {name!r} at {where}: {exc}")) from exc


def check_collection(col: Any, name: str, fingerprint: dict[str, Any]) -> None:
    """Adopt an empty collection without a fingerprint; refuse another encoder's, or a distance other than cosine."""
    stored = recorded_fingerprint(col)
    if stored is None:
        if col.count() == 0:  # an empty collection made elsewhere: adopt it
            col.modify(metadata={**(col.metadata or {}), FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True)})
        else:
            raise EncoderMismatchError(
                f"collection {name!r} holds {col.count()} records but no reasonir-rag encoder fingerprint, "
                "so its vectors may come from any model; index into another collection name"
            )
    else:
        current = json.loads(json.dumps(fingerprint))
        if stored != current:
            differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
            raise EncoderMismatchError(
                f"collection {name!r} was indexed with encoder {stored} but this encoder is {current} "
                f"(they differ in: {', '.join(differ)}). Search it with the encoder it was built with, or "
                f"index with this encoder into another collection name (e.g. '{name}-{current.get('dim')}d')"
            )
    config = _configuration(col)
    for index in ("hnsw", "spann"):
        space = (config.get(index) or {}).get("space")
        if space and space != "cosine":
            raise InvalidInputError(
                f"collection {name!r} uses {space!r} distance; reasonir-rag needs cosine "
                "(scores are 1 - distance): use another collection name"
            )

"""What the command modules share: the store and encoder options, and turning them into a store and an encoder."""

from __future__ import annotations

import argparse
import logging
import math
import textwrap
from pathlib import Path
from typing import Any

from reasonir_rag.index.connection import ChromaConnection

logger = logging.getLogger(__name__)

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_KEY_FIELDS = ("title", "book", "chapter", "section", "source", "source_id")


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", required=True, help="Chroma collection name (3-512 chars of [a-zA-Z0-9._-])")
    where = p.add_argument_group(
        "where the index lives (default: embedded folder $REASONIR_CHROMA_PATH or ./reasonir-chroma)"
    )
    where.add_argument("--path", help="embedded Chroma folder")
    where.add_argument("--host", help="Chroma server host (credentials: see --auth)")
    where.add_argument("--port", type=int, help="Chroma server port")
    where.add_argument("--ssl", action="store_true", help="use https for the Chroma server")
    where.add_argument(
        "--auth",
        choices=["token", "basic"],
        default=None,
        help="Chroma's client auth provider (default $CHROMA_CLIENT_AUTH_PROVIDER, else token when credentials are "
        "set); the credentials come only from $CHROMA_CLIENT_AUTH_CREDENTIALS (a token, or user:password)",
    )
    where.add_argument(
        "--auth-header",
        choices=["Authorization", "X-Chroma-Token"],
        default=None,
        help="the token's header (default $CHROMA_AUTH_TOKEN_TRANSPORT_HEADER, else Authorization: Bearer)",
    )


def positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds (argparse names the option in its error)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def add_llm_timeout_arg(p: argparse.ArgumentParser) -> None:
    """``--llm-timeout SECONDS``: the read timeout of a served LLM's requests (long generations need more)."""
    p.add_argument("--llm-timeout", type=positive_seconds, default=None, metavar="SECONDS",
                   help="seconds a served LLM's request may take to answer (default 120; the 5 s connect timeout "
                   "is separate): raise it for long generations on a slow server")


def add_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder",
        default=None,
        help="reasonir | minilm | a model id or folder (default: the encoder recorded in an existing "
        "collection, else reasonir)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--cache", default=None, help="embedding cache folder: re-encoding unchanged text is free")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens embedded per text (default: the preset's, 2048 for reasonir)")
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"],
                   help="encoder precision (default auto: bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--document-prefix", default=None, metavar="TEXT",
                   help="the text before every document (default: the collection's recorded one, else the "
                   "preset's; '' is none, GritLM's encode(instruction=''), as ReasonIR's MMLU/GPQA datastore)")


def connection(args: argparse.Namespace) -> ChromaConnection:
    """``--path`` or ``--host``/``--port``/``--ssl`` with ``--auth``/``--auth-header``; the credentials come from
    ``$CHROMA_CLIENT_AUTH_CREDENTIALS`` (or the deprecated ``$CHROMA_AUTH_TOKEN``), never from the command line."""
    if args.path is not None and (args.host is not None or args.port is not None):
        raise ValueError("give either --path (embedded) or --host/--port (server), not both")
    return ChromaConnection(path=args.path, host=args.host, port=args.port, ssl=args.ssl,
                            auth_provider=getattr(args, "auth", None), auth_header=getattr(args, "auth_header", None))


def encoder_name(args: argparse.Namespace, *, must_exist: bool) -> str:
    """The --encoder value, else the one recorded in the collection, else reasonir."""
    from reasonir_rag.errors import CollectionNotFoundError
    from reasonir_rag.index.collections import stored_fingerprint

    if args.encoder:
        return args.encoder
    try:
        fingerprint = stored_fingerprint(args.collection, connection(args))
    except CollectionNotFoundError:
        if must_exist:
            raise
        return "reasonir"
    if not fingerprint:
        return "reasonir"
    model = str(fingerprint.get("model", "reasonir"))
    name = "minilm" if model == MINILM_NAME else model
    logger.info("using the encoder recorded in collection %r: %s", args.collection, name)
    return name


def load_encoder(name: str, args: argparse.Namespace, **overrides: Any) -> Any:
    """The encoder ``name`` with the command's options; ``overrides`` (a protocol's settings) under them."""
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    kwargs: dict[str, Any] = {"device": args.device, "cache": args.cache, **overrides}
    for option in ("max_length", "dtype", "document_prefix"):
        if getattr(args, option, None) is not None:
            kwargs[option] = getattr(args, option)
    if "document_prefix" not in kwargs and getattr(args, "encoder", None) is None:
        recorded = _recorded_fingerprint(args)  # the collection's encoder: its prefix too, so the store opens
        if recorded and isinstance(recorded.get("document_prefix"), str):
            kwargs["document_prefix"] = recorded["document_prefix"]
    if getattr(args, "no_progress", False):
        kwargs["show_progress"] = False
    return ReasonIREncoder.from_pretrained(name, **kwargs)


def _recorded_fingerprint(args: argparse.Namespace) -> dict[str, Any] | None:
    """The encoder fingerprint recorded in ``--collection``, or None (no such collection, or nothing recorded)."""
    from reasonir_rag.errors import CollectionNotFoundError
    from reasonir_rag.index.collections import stored_fingerprint

    if not getattr(args, "collection", None):
        return None
    try:
        return stored_fingerprint(args.collection, connection(args)) or None
    except CollectionNotFoundError:
        return None


def check_local_path(args: argparse.Namespace) -> None:
    """Searching must not create an empty database as a side effect of a typo: the collection name follows
    Chroma's rule and an embedded ``--path`` holds a Chroma database, checked before any model loads."""
    from reasonir_rag.errors import DataNotFoundError
    from reasonir_rag.index.collections import check_collection_name

    check_collection_name(args.collection)
    where = connection(args)
    if where.on_server:
        return
    path = Path(where.describe())
    if not path.is_dir():
        raise DataNotFoundError(f"no Chroma database at {path}: index documents first (reasonir-rag index ... "
                                f"--path {path}), or pass the --path you indexed into")
    if not (path / "chroma.sqlite3").is_file():
        raise DataNotFoundError(f"{path} is a folder but not a Chroma database (it has no chroma.sqlite3): pass "
                                "the --path you indexed into")


def key_metadata(meta: dict[str, Any], doc_id: str = "") -> str:
    shown = [str(meta[k]) for k in _KEY_FIELDS if meta.get(k) not in (None, "", doc_id)]
    return " · ".join(shown[:3])


def snippet(text: str, width: int = 240) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" …")

"""Where a Chroma collection lives: one type for the store, the bulk sinks and the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._common import secrets
from reasonir_rag._deps import require


@dataclass(frozen=True)
class ChromaConnection:
    """An embedded folder (``path``, default ``$REASONIR_CHROMA_PATH`` or ``./reasonir-chroma``) or a Chroma
    server (``host``/``port``, ``ssl``). ``auth_token`` (default ``$CHROMA_AUTH_TOKEN``) goes out as
    ``Authorization: Bearer``; it and ``headers`` stay out of ``repr`` and of every message."""

    path: str | Path | None = None
    host: str | None = None
    port: int | None = None
    ssl: bool = False
    auth_token: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.path is not None and self.on_server:
            raise ValueError("give either path (embedded) or host/port (a Chroma server), not both")
        if self.port is not None and (isinstance(self.port, bool) or not 0 < int(self.port) < 65536):
            raise ValueError(f"port must be 1-65535, got {self.port!r}")

    @property
    def on_server(self) -> bool:
        return self.host is not None or self.port is not None

    def describe(self) -> str:
        """Where it points, without secrets: a folder or ``http(s)://host:port``."""
        if not self.on_server:
            folder = self.path if self.path is not None else os.environ.get("REASONIR_CHROMA_PATH", "./reasonir-chroma")
            return str(Path(folder).expanduser())
        return f"{'https' if self.ssl else 'http'}://{self.host or 'localhost'}:{int(self.port or 8000)}"

    def open(self) -> tuple[Any, str]:
        """A Chroma client and :meth:`describe`."""
        chromadb = require("chromadb")
        settings = chromadb.config.Settings(anonymized_telemetry=False)
        where = self.describe()
        if not self.on_server:
            return chromadb.PersistentClient(path=where, settings=settings), where
        token = self.auth_token if self.auth_token is not None else os.environ.get("CHROMA_AUTH_TOKEN")
        headers = dict(self.headers or {})
        secrets.register(token)  # masked in every message, even one a server or proxy echoes back
        secrets.register_headers(headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            client = chromadb.HttpClient(host=self.host or "localhost", port=int(self.port or 8000), ssl=self.ssl,
                                         headers=headers or None, settings=settings)
        except Exception as exc:  # the message never includes the headers (the token stays private)
            raise ConnectionError(secrets.redact(f"could not reach the Chroma server at {where}: {exc}")) \
                from secrets.scrub(exc)
        return client, where

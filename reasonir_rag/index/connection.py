"""Where a Chroma collection lives: one type for the store, the bulk sinks and the CLI.

A server's credentials go through Chroma's own client auth settings (``chroma_client_auth_provider``,
``chroma_client_auth_credentials``, ``chroma_auth_token_transport_header``), so a token (``Authorization: Bearer``
or ``X-Chroma-Token``) or HTTP basic auth (``user:password``) reaches the server exactly as chromadb sends it.
Each setting defaults to Chroma's environment variable (``CHROMA_CLIENT_AUTH_PROVIDER``,
``CHROMA_CLIENT_AUTH_CREDENTIALS``, ``CHROMA_AUTH_TOKEN_TRANSPORT_HEADER``). The old ``auth_token`` /
``$CHROMA_AUTH_TOKEN`` still work as a deprecated alias for a Bearer token (logged once).

chromadb's HTTP client has no timeout at all, so a host that never answers would hang for the kernel's TCP
timeout (134 s measured here) on every call: before the client is made the server is asked for its heartbeat with
a :data:`CONNECT_TIMEOUT` connect timeout (no credentials sent), and the client's own connects get the same bound.
An embedded folder that cannot be opened (read-only, full, not writable) is a
:class:`~reasonir_rag.errors.StorageError` naming it (``storage.py``).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonir_rag._common import secrets
from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, ServiceUnavailableError, StorageError
from reasonir_rag.index.storage import storage_error

logger = logging.getLogger(__name__)

AUTH_PROVIDERS = {  # the short names; a full chromadb ClientAuthProvider class path is taken as it is
    "token": "chromadb.auth.token_authn.TokenAuthClientProvider",
    "basic": "chromadb.auth.basic_authn.BasicAuthClientProvider",
}
TOKEN_HEADERS = ("Authorization", "X-Chroma-Token")  # what chromadb's token provider can send
CONNECT_TIMEOUT = 5.0  # seconds to open a connection to a Chroma server
ANSWER_TIMEOUT = 30.0  # seconds for its heartbeat to answer once connected
PROBE_AGENT = "reasonir-rag reachability probe"  # the heartbeat asked before chromadb connects: no credentials
_deprecation_logged = False


@dataclass(frozen=True)
class ChromaConnection:
    """An embedded folder (``path``, default ``$REASONIR_CHROMA_PATH`` or ``./reasonir-chroma``) or a Chroma
    server (``host``/``port``, ``ssl``). Server auth is Chroma's own: ``auth_provider`` (``"token"``, ``"basic"``
    or a chromadb ``ClientAuthProvider`` class path; default ``$CHROMA_CLIENT_AUTH_PROVIDER``, else ``"token"``
    when credentials are set), ``auth_credentials`` (the token, or ``user:password`` for basic; default
    ``$CHROMA_CLIENT_AUTH_CREDENTIALS``), ``auth_header`` (the token's header: ``Authorization`` as ``Bearer``,
    the default, or ``X-Chroma-Token``; default ``$CHROMA_AUTH_TOKEN_TRANSPORT_HEADER``). ``auth_token`` (default
    ``$CHROMA_AUTH_TOKEN``) is the deprecated alias of a Bearer token. Credentials and ``headers`` stay out of
    ``repr`` and of every message."""

    path: str | Path | None = None
    host: str | None = None
    port: int | None = None
    ssl: bool = False
    auth_token: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    auth_provider: str | None = None
    auth_credentials: str | None = field(default=None, repr=False)
    auth_header: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None and self.on_server:
            raise ValueError("give either path (embedded) or host/port (a Chroma server), not both")
        if self.port is not None and (isinstance(self.port, bool) or not 0 < int(self.port) < 65536):
            raise ValueError(f"port must be 1-65535, got {self.port!r}")
        _check_provider(self.auth_provider, "auth_provider")
        _check_header(self.auth_header, "auth_header")

    @property
    def on_server(self) -> bool:
        return self.host is not None or self.port is not None

    def describe(self) -> str:
        """Where it points, without secrets: a folder or ``http(s)://host:port``."""
        if not self.on_server:
            folder = self.path if self.path is not None else os.environ.get("REASONIR_CHROMA_PATH", "./reasonir-chroma")
            return str(Path(folder).expanduser())
        return f"{'https' if self.ssl else 'http'}://{self.host or 'localhost'}:{int(self.port or 8000)}"

    @property
    def folder(self) -> Path | None:
        """The embedded folder (None on a server)."""
        return None if self.on_server else Path(self.describe())

    def open(self) -> tuple[Any, str]:
        """A Chroma client and :meth:`describe`."""
        chromadb = require("chromadb")
        settings = chromadb.config.Settings(anonymized_telemetry=False)
        where = self.describe()
        if not self.on_server:
            try:
                return chromadb.PersistentClient(path=where, settings=settings), where
            except Exception as exc:  # everything that fails here is about the folder
                raise (storage_error(exc, where, where, "opening the Chroma database")
                       or StorageError(f"cannot open the Chroma folder {where}: {type(exc).__name__}: {exc}")) from exc
        headers = dict(self.headers or {})
        secrets.register_headers(headers)
        secrets.guard_http_logs()
        auth = self.auth_settings()
        if auth:
            settings = chromadb.config.Settings(anonymized_telemetry=False, **auth)
        self._check_answers(where)
        try:
            client = chromadb.HttpClient(host=self.host or "localhost", port=int(self.port or 8000), ssl=self.ssl,
                                         headers=headers or None, settings=settings)
        except Exception as exc:  # the message never includes the headers (the token stays private)
            raise ServiceUnavailableError(secrets.redact(f"could not reach the Chroma server at {where}: {exc}")) \
                from secrets.scrub(exc)
        _bound_connects(client)
        return client, where

    def _check_answers(self, where: str) -> None:
        """Fail in seconds when nothing at ``where`` answers (chromadb itself would wait minutes)."""
        httpx = require("httpx")
        try:
            with httpx.Client(timeout=httpx.Timeout(ANSWER_TIMEOUT, connect=CONNECT_TIMEOUT),
                              headers={"User-Agent": PROBE_AGENT}) as probe:
                probe.get(f"{where}/api/v2/heartbeat")
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            phase = "did not accept a connection" if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) \
                else f"accepted the connection but did not answer within {ANSWER_TIMEOUT:g} s"
            raise ServiceUnavailableError(
                f"the Chroma server at {where} {phase} ({type(exc).__name__}: {exc}); is it running "
                "(chroma run --host 127.0.0.1 --port PORT) and are --host/--port right?") from exc
        except httpx.HTTPError:  # it answered, or failed past the connection: chromadb says what is wrong
            pass

    def auth_settings(self) -> dict[str, str]:
        """Chroma's client auth settings for this connection (empty: no auth), each secret registered for masking."""
        provider = self.auth_provider or os.environ.get("CHROMA_CLIENT_AUTH_PROVIDER") or None
        credentials = self.auth_credentials or os.environ.get("CHROMA_CLIENT_AUTH_CREDENTIALS") or None
        header = self.auth_header or os.environ.get("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER") or None
        legacy = self.auth_token if self.auth_token is not None else os.environ.get("CHROMA_AUTH_TOKEN")
        if legacy and not credentials:
            _log_deprecation("auth_token" if self.auth_token is not None else "$CHROMA_AUTH_TOKEN")
            provider, credentials = provider or "token", legacy
        secrets.register(credentials, legacy)  # masked in every message, even one a server or proxy echoes back
        if not credentials:
            if provider:
                raise InvalidInputError(f"Chroma auth provider {provider!r} needs credentials: set "
                                        "$CHROMA_CLIENT_AUTH_CREDENTIALS (or auth_credentials=)")
            return {}
        provider = provider or "token"
        _check_provider(provider, "$CHROMA_CLIENT_AUTH_PROVIDER")
        _check_header(header, "$CHROMA_AUTH_TOKEN_TRANSPORT_HEADER")
        settings = {"chroma_client_auth_provider": AUTH_PROVIDERS.get(provider, provider),
                    "chroma_client_auth_credentials": credentials}
        if provider == "basic" or AUTH_PROVIDERS.get(provider, provider) == AUTH_PROVIDERS["basic"]:
            if ":" not in credentials:
                raise InvalidInputError("basic auth credentials must be 'user:password'")
            secrets.register(base64.b64encode(credentials.encode("utf-8")).decode("ascii"),
                             credentials.split(":", 1)[1])
        elif header:
            settings["chroma_auth_token_transport_header"] = header
        return settings


def _bound_connects(client: Any) -> None:
    """Give chromadb's HTTP session (``timeout=None``) a connect timeout; reads stay unbounded (a long query)."""
    httpx = require("httpx")
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT)
    else:
        logger.debug("chromadb's HTTP session was not found: its connects keep chromadb's (unbounded) timeout")


def _check_provider(provider: str | None, what: str) -> None:
    if provider is not None and provider not in AUTH_PROVIDERS and "." not in provider:
        raise InvalidInputError(f"{what} must be one of {', '.join(AUTH_PROVIDERS)} or a chromadb "
                                f"ClientAuthProvider class path, got {provider!r}")


def _check_header(header: str | None, what: str) -> None:
    if header is not None and header not in TOKEN_HEADERS:
        raise InvalidInputError(f"{what} must be one of {', '.join(TOKEN_HEADERS)}, got {header!r}")


def _log_deprecation(what: str) -> None:
    global _deprecation_logged
    if not _deprecation_logged:
        _deprecation_logged = True
        logger.warning("%s is deprecated: use Chroma's own client auth settings, $CHROMA_CLIENT_AUTH_CREDENTIALS "
                       "(with $CHROMA_CLIENT_AUTH_PROVIDER and $CHROMA_AUTH_TOKEN_TRANSPORT_HEADER) or "
                       "ChromaConnection(auth_credentials=...); it is sent as the same Bearer token", what)

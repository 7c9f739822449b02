"""One redaction layer for every secret the package reads: the OpenAI key, Chroma's token and credentials, header
values a user gives, the password in a URL.

Each is registered where it is read (:func:`register`, :func:`register_basic_auth`, :func:`register_headers`,
:func:`register_url`); :func:`redact` masks them in any text, :func:`scrub` in an exception and every cause and
context chained to it (a server that echoes a token puts it in the openai or chromadb error we chain from), and
:class:`RedactingFilter` in log records. Errors are formed with :func:`redact`; the CLI prints through it and
puts the filter on its log handlers. Values shorter than :data:`MIN_SECRET_LENGTH` are not registered (masking
"a" everywhere would hide every message, and such a value protects nothing).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import urllib.parse
from collections.abc import Iterable, Mapping

MASK = "***"
MIN_SECRET_LENGTH = 4
_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()  # longest first, so a secret inside another is masked as part of the longer one


def register(*values: str | None) -> None:
    """Remember secret values (and their URL-quoted forms) so that :func:`redact` masks them."""
    global _ordered
    found = set()
    for value in values:
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            continue
        found.update({value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)})
    with _lock:
        if found - _secrets:
            _secrets.update(found)
            _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def register_basic_auth(username: str | None, password: str | None) -> None:
    """A basic-auth password, and the base64 ``user:password`` credential that goes out in its header."""
    register(password)
    if password:
        register(base64.b64encode(f"{username or ''}:{password}".encode()).decode())


def register_headers(headers: Mapping[str, str] | None) -> None:
    """Every value of headers the user gives (any of them may carry a credential: a gateway key, a cookie);
    ``Authorization: Bearer X`` / ``Basic X`` also registers ``X`` alone."""
    for value in (headers or {}).values():
        if not isinstance(value, str):
            continue
        register(value)
        scheme, _, credential = value.partition(" ")
        if scheme.lower() in ("bearer", "basic", "token") and credential:
            register(credential.strip())


def register_url(url: str | None) -> str | None:
    """Register the password of ``scheme://user:password@host`` and return the URL with it masked (for messages)."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    register_basic_auth(urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password))
    register(parts.password)
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def redact(text: object) -> str:
    """``str(text)`` with every registered secret replaced by ``***``."""
    out = str(text)
    for secret in _ordered:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def scrub(exc: BaseException) -> BaseException:
    """Mask secrets in the message of ``exc`` and of every exception chained to it, in place (what a traceback
    prints is ``str`` of each); returns ``exc``."""
    for e in _chain(exc):
        try:
            text = str(e)
        except Exception:  # a broken __str__ prints nothing of ours either
            continue
        clean = redact(text)
        if clean != text or any(isinstance(a, str) and redact(a) != a for a in e.args):
            e.args = (clean,)
            for attr in ("message", "msg"):
                if isinstance(getattr(e, attr, None), str):
                    with contextlib.suppress(AttributeError):
                        setattr(e, attr, clean)
    return exc


class RedactingFilter(logging.Filter):
    """A handler filter that formats each record's message (and traceback) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # leave a malformed record to logging's own error path
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            scrub(record.exc_info[1])
            record.exc_text = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_filter(targets: Iterable[logging.Handler | logging.Logger]) -> None:
    """Put one :class:`RedactingFilter` on each handler (every record it writes) or logger (the records logged
    on that very logger) that has none."""
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())


# where the HTTP clients under openai and chromadb log requests and URLs at DEBUG (records are filtered on the
# logger that makes them, so these names, not their parents)
HTTP_LOGGERS = ("openai._base_client", "httpx", "httpx2", "httpcore.http11", "httpcore.connection",
                "httpcore.proxy", "urllib3.connectionpool")


def guard_http_logs() -> None:
    """Mask registered secrets in the HTTP clients' own DEBUG logs, whoever handles them."""
    install_filter(logging.getLogger(name) for name in HTTP_LOGGERS)

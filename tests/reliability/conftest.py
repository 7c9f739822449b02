"""Fixtures and helpers for the fault, load and security tests.

Real servers on loopback that a test can stop and restart on the same port, a recording reverse proxy (to count
the requests a server really received and to see the headers a client sends), the listening sockets of a process
read from /proc, and a privilege drop that makes a folder truly unwritable when the tests run as root.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ChromaServer

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.0.0.1", "::1")


# ------------------------------------------------------------------------------------------ Chroma server
@pytest.fixture
def chroma_server_factory(tmp_path) -> Iterator[Callable[[], ChromaServer]]:
    """Makes stoppable Chroma servers in this test's folder; every one is stopped at the end."""
    made: list[ChromaServer] = []

    def make() -> ChromaServer:
        server = ChromaServer(tmp_path / f"chroma-{len(made)}")
        server.folder.mkdir()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


# ------------------------------------------------------------------------------------------ recording proxy
@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the upstream answered; 502 when it could not be reached


@dataclass
class RecordingProxy:
    """A reverse proxy on 127.0.0.1 in front of a loopback server (``upstream`` port, settable: point it at a
    restarted server). Records every exchange; answers 502 when the upstream is down or drops the connection.
    With ``echo`` set it answers 401 itself, quoting the request's headers (as some proxies do in an error)."""

    upstream: int | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    echo: bool = False

    def __post_init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                exchange = Exchange(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with outer._lock:
                    outer.exchanges.append(exchange)
                status, headers, payload = outer._send_upstream(self.command, self.path, self.headers, body)
                exchange.status = status
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)  # shutdown() waits for the poll: 50 ms, not 0.5 s
        self._thread.start()

    def _send_upstream(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list, bytes]:
        if self.echo:
            quoted = {k.lower(): v for k, v in headers.items()}
            payload = json.dumps({"error": "AuthError", "message": f"rejected request with headers {quoted}"})
            return 401, [("content-type", "application/json")], payload.encode()
        if self.upstream is None:
            return 502, [("content-type", "application/json")], b'{"error": "no upstream"}'
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=300)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=forwarded)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        except OSError as exc:  # refused, reset, closed mid-answer: the upstream is gone
            payload = json.dumps({"error": f"upstream unavailable: {type(exc).__name__}"}).encode()
            return 502, [("content-type", "application/json")], payload
        finally:
            conn.close()

    @property
    def client_calls(self) -> list[Exchange]:
        """The exchanges chromadb made (not reasonir-rag's reachability probes, which carry no credentials)."""
        from reasonir_rag.index.connection import PROBE_AGENT

        return [e for e in self.exchanges if e.headers.get("user-agent") != PROBE_AGENT]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recording_proxy() -> Iterator[RecordingProxy]:
    proxy = RecordingProxy()
    yield proxy
    proxy.close()


# ------------------------------------------------------------------------------------------ sockets, processes
def _socket_inodes(pid: int) -> set[int]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    return found


def _listening_by_inode() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket, from /proc/net/tcp and tcp6."""
    out: dict[int, tuple[str, int]] = {}
    for family, table in ((socket.AF_INET, "tcp"), (socket.AF_INET6, "tcp6")):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/net/{table}") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] != "0A":  # TCP_LISTEN
                    continue
                hex_addr, hex_port = parts[1].split(":")
                raw = bytes.fromhex(hex_addr)  # little-endian 32-bit words
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                out[int(parts[9])] = (socket.inet_ntop(family, raw), int(hex_port, 16))
    return out


def listening_addresses(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket these processes listen on."""
    table = _listening_by_inode()
    return sorted({(pid, *table[i]) for pid in pids for i in _socket_inodes(pid) if i in table})


def pid_listening_on(port: int) -> list[int]:
    """The PIDs holding a socket that listens on ``port``."""
    inodes = {i for i, (_, p) in _listening_by_inode().items() if p == port}
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _socket_inodes(int(entry)) & inodes:
            pids.append(int(entry))
    return pids


def process_group(pgid: int) -> list[int]:
    """The PIDs in process group ``pgid`` (a server started with ``start_new_session`` and its workers)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
    return members


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]


def kill_group_serving(port: int, marker: str) -> int:
    """SIGKILL the process group (leader and workers) of the server we started that listens on ``port``.

    Only a session leader whose command line holds ``marker`` and ``port`` is killed: never anything else."""
    for pid in pid_listening_on(port):
        args = cmdline(pid)
        if os.getpgid(pid) == pid and marker in " ".join(args) and str(port) in args:
            os.killpg(pid, signal.SIGKILL)
            return pid
    raise AssertionError(f"no server of ours with {marker!r} listens on port {port}")


# ------------------------------------------------------------------------------------------ unwritable folders
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def without_root_override() -> Callable[[], None] | None:
    """A ``preexec_fn`` that drops CAP_DAC_OVERRIDE from the child's bounding set, so that even root sees a
    mode-0555 folder as unwritable (as any user would); None when not running as root (nothing to drop)."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")

    return drop


def run_python(code: str, *args: str, preexec_fn: Callable[[], None] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -c code args`` from the repository root (imports ``tests.*`` and the package)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)

"""Real servers for the tests, on 127.0.0.1 only, each stopped by its own process-group PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CHROMA = Path(sys.executable).parent / "chroma"
SERVED_NAME = "smollm2"


@dataclass(frozen=True)
class ServedModel:
    base_url: str  # ends in /v1
    model: str  # the served model name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(RuntimeError):
    pass


@contextlib.contextmanager
def vllm_cpu_server(model_dir: Path, log_path: Path, *, name: str = SERVED_NAME, extra: Sequence[str] = (),
                    timeout_s: float = 420) -> Iterator[ServedModel]:
    """vLLM for CPU (its own venv, `make test` builds it) serving ``model_dir`` as ``name``, with ``extra`` args.

    float32: on a CPU without AVX-512 bf16 (this AVX2 EPYC), vLLM's bf16 is emulated and 4x slower (8 chat
    requests of 392 + 24 tokens: 25 s in float32, 100 s in bfloat16); fp32 also makes parity checks exact."""
    if not VLLM_PYTHON.exists():
        raise ServerFailed(f"the vLLM venv is missing ({VLLM_PYTHON}); create it with scripts/setup_vllm.sh "
                           "(`make test` runs it)")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--dtype", "float32", "--enforce-eager", *extra]
    with open(log_path, "wb") as log:
        # its own session, so the engine process it spawns is stopped together with it (by its PID)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"vLLM exited with {proc.returncode} before serving; log tail:\n{tail(log_path)}")
            try:
                with opener.open(base + "/models", timeout=2) as r:
                    if name in r.read().decode():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"vLLM did not serve /v1/models within {timeout_s:.0f} s; log tail:\n"
                                   f"{tail(log_path)}")
            time.sleep(1)
        yield ServedModel(base, name)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group led by our own PID: the server and its engine
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"(no log: {exc})"


class ChromaServer:
    """``chroma run`` on 127.0.0.1 at a fixed port, so a test can stop it and start it again at the same address."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = folder
        self.port = port or free_port()
        self.log_path = folder / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def start(self, timeout: float = 90) -> ChromaServer:
        if not CHROMA.exists():
            raise ServerFailed(f"the chroma console script is missing at {CHROMA} (pip install chromadb)")
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(CHROMA), "run", "--path", str(self.folder / "data"), "--host", "127.0.0.1",
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"chroma run exited early: {tail(self.log_path, 2000)}")
            try:
                with opener.open(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1) as resp:
                    if "nanosecond heartbeat" in json.loads(resp.read()):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(f"chroma run did not answer in {timeout:.0f} s: {tail(self.log_path, 2000)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop this server by its own PID (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            stop(self.proc)


# ------------------------------------------------------------------------------------------ fault servers
@dataclass
class Reply:
    """One scripted answer of a :class:`FaultServer`: a status with its JSON body and headers; ``hang``: read the
    request and answer nothing until the server closes; ``echo``: put the request's headers in the body (as some
    servers and proxies quote what they were sent in an error)."""

    status: int = 200
    body: dict | None = None
    headers: dict[str, str] | None = None
    hang: bool = False
    echo: bool = False
    delay: float = 0.0  # seconds to wait before answering


class FaultServer:
    """A real HTTP server on 127.0.0.1 that answers from a script of :class:`Reply` (the last one repeats), for
    what a healthy server never does on demand: 429 with each ``Retry-After`` form, 5xx, hanging after the
    request, echoing secrets. Records each request's path, headers, JSON body and arrival time (monotonic)."""

    def __init__(self, script: Sequence[Reply]):
        import http.server
        import threading

        self.script = list(script)
        self.requests: list[dict] = []
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": headers, "at": time.monotonic(),
                                           "body": json.loads(body) if body.strip() else None})
                with outer._lock:
                    reply = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                    outer.in_flight += 1
                    outer.most_in_flight = max(outer.most_in_flight, outer.in_flight)
                try:
                    if reply.hang:
                        outer._closing.wait()
                        return
                    outer._closing.wait(reply.delay)
                    self._send(reply, headers)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def _send(self, reply: Reply, headers: dict[str, str]) -> None:
                payload = dict(reply.body or {})
                if reply.echo:
                    payload["error"] = {"message": f"rejected request with headers {headers}"}
                data = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (reply.headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def unanswered_connect_port() -> Iterator[int]:
    """A loopback port whose listen queue is full (backlog 0, already taken by queued connections that are never
    accepted): the kernel drops every further SYN, so a connect there hangs, as to a host that does not answer."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = server.getsockname()
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        time.sleep(0.2)  # the handshakes that fit complete; the queue is full from here on
        yield address[1]
    finally:
        for s in (*fillers, server):
            s.close()

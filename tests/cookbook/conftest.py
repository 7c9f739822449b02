"""Fixtures for running the cookbook scripts: their environment and a real Chroma server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port

CHROMA = Path(sys.executable).parent / "chroma"


@pytest.fixture(scope="session")
def cookbook_env(offline_cache, shared_data) -> dict[str, str]:
    """Small default sizes (REASONIR_COOKBOOK_SMOKE), no hub, the session's converted SmolLM2."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env.update(REASONIR_COOKBOOK_SMOKE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               TOKENIZERS_PARALLELISM="false", REASONIR_OFFLINE_CACHE=str(offline_cache),
               REASONIR_SHARED_DATA=str(shared_data), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """``chroma run`` on a free loopback port, stopped by its own PID."""
    if not CHROMA.exists():
        pytest.fail(f"the chroma console script is missing at {CHROMA} (pip install chromadb)")
    folder = tmp_path_factory.mktemp("cookbook-chroma")
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(CHROMA), "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited early: {log_path.read_text()[-2000:]}")
            try:
                with opener.open(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as resp:
                    if "nanosecond heartbeat" in json.loads(resp.read()):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer in 60 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

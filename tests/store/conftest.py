"""Fixtures for the store, chunker, loader and CLI tests: a real Chroma server, a counting encoder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

CHROMA = Path(sys.executable).parent / "chroma"


@pytest.fixture(autouse=True)
def _no_chroma_default_embedding(monkeypatch):
    """Chroma's default embedding function would download an ONNX model: fail loudly if anything builds it."""
    from chromadb.api import types
    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Chroma's default (ONNX) embedding function was used")

    monkeypatch.setattr(onnx_mini_lm_l6_v2.ONNXMiniLM_L6_V2, "__init__", forbidden)
    monkeypatch.setattr(types.DefaultEmbeddingFunction, "__call__", forbidden)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real ``chroma run`` server on 127.0.0.1 (free port), stopped by its own PID at the end."""
    if not CHROMA.exists():
        pytest.fail(f"the chroma console script is missing at {CHROMA} (pip install chromadb)")
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log_path = folder / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed in the finally below, after the server stops)
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
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
        log.close()


class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed (to prove that re-adds cost no model time)."""

    def __init__(self, encoder: Any):
        self._encoder = encoder
        self.documents_encoded = 0
        self.queries_encoded = 0

    def encode_documents(self, texts, **kwargs):
        self.documents_encoded += len(texts)
        return self._encoder.encode_documents(texts, **kwargs)

    def encode_queries(self, texts, **kwargs):
        self.queries_encoded += 1 if isinstance(texts, str) else len(texts)
        return self._encoder.encode_queries(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


@pytest.fixture
def counting(tiny_encoder) -> CountingEncoder:
    return CountingEncoder(tiny_encoder)


OPENSTAX_IDS = (
    "chemistry-2e/m68808/0",  # buffers
    "university-physics-volume-1/m58299/0",  # Newton's third law
    "microbiology/m58819/10",  # enzymes lower activation energy
    "chemistry-2e/m68837/3",  # photosynthesis and oxygen
    "anatomy-and-physiology-2e/m46023/10",  # mitochondria
    "chemistry-2e/m68663/0",  # why study chemistry (a distractor)
    "university-physics-volume-1/m58268/0",  # units and measurement (a distractor)
)


@pytest.fixture(scope="session")
def openstax_sample(shared_data) -> list[dict[str, Any]]:
    """A handful of real OpenStax passages (CC BY 4.0) with clearly different topics."""
    wanted = set(OPENSTAX_IDS)
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((shared_data / "openstax").glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if any(w in line[:80] for w in wanted):
                    row = json.loads(line)
                    if row["id"] in wanted:
                        rows[row["id"]] = row
    missing = wanted - set(rows)
    assert not missing, f"OpenStax passages missing from {shared_data}: {sorted(missing)}"
    return [rows[i] for i in OPENSTAX_IDS]

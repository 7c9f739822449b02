"""Fixtures for the scale-out tests: a local Ray cluster on CPU and a real vLLM pooling server for CPU on 127.0.0.1
(the Chroma server is the session's, from tests/fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ServedModel, ServerFailed, vllm_cpu_server

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


@pytest.fixture(scope="module")
def vllm_token_server(served_tiny_dir, tmp_path_factory) -> Iterator[ServedModel]:
    """The tiny model served the faithful way: bidirectional, per-token states (one start; stopped with its module)."""
    from reasonir_rag.encoding.served import VLLM_SERVE_ARGS

    try:
        with vllm_cpu_server(served_tiny_dir, tmp_path_factory.mktemp("vllm-pool") / "server.log", name=SERVED,
                             extra=VLLM_SERVE_ARGS["faithful"]) as served:
            yield served
    except ServerFailed as exc:
        pytest.fail(str(exc))


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


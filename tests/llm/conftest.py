"""Fixtures for the LLM stages: local backends on the offline models and a real vLLM CPU server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    """Run torch on one thread here. On a busy 2-core box (other tests, the vLLM server) two OpenMP threads
    wait on each other at every small op: generation got ~10x slower than with one thread."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2_llm(smollm2_dir):
    """SmolLM2-135M-Instruct (real weights) in fp32 on CPU."""
    from reasonir_rag.llm import TransformersLLM

    return TransformersLLM(str(smollm2_dir), device="cpu")

"""Where a model runs and in which precision: one rule for the encoder and the local LLM."""

from __future__ import annotations

from typing import Any

from reasonir_rag._deps import require


def pick_device(device: str | None) -> str:
    torch = require("torch")
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: Any, device: str) -> Any:
    """bf16 on CUDA and fp32 on CPU unless the caller says otherwise."""
    torch = require("torch")
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype

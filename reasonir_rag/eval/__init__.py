"""Evaluation: does ReasonIR retrieval make a reader answer better, and how well does it retrieve?

One module per concept, all framework-free at import time:

- :mod:`~reasonir_rag.eval.datasets`: MMLU (local CSV folders or the hub) and GPQA (the official
  encrypted zip, read in memory only) as :class:`Question` lists with seeded selection;
- :mod:`~reasonir_rag.eval.prompts`: ReasonIR's reader prompts (MMLU zero-shot CoT, GPQA ``\\boxed{}``);
- :mod:`~reasonir_rag.eval.extract`: answer extraction with ReasonIR's fallbacks;
- :mod:`~reasonir_rag.eval.stats`: accuracy, bootstrap CIs, exact McNemar, gains;
- :mod:`~reasonir_rag.eval.ir_data`, :mod:`~reasonir_rag.eval.ir_metrics`,
  :mod:`~reasonir_rag.eval.retrieval`, :mod:`~reasonir_rag.eval.bm25`: BEIR/BRIGHT retrieval evaluation;
- :mod:`~reasonir_rag.eval.journal`: the resumable SQLite journal every result goes through;
- :mod:`~reasonir_rag.eval.report`: JSON, markdown and a PNG chart.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Question": "reasonir_rag.eval.datasets",
    "Dataset": "reasonir_rag.eval.datasets",
    "load_mmlu": "reasonir_rag.eval.mmlu",
    "load_gpqa": "reasonir_rag.eval.gpqa",
    "fetch_gpqa": "reasonir_rag.eval.gpqa",
    "Journal": "reasonir_rag.eval.journal",
    "extract_choice": "reasonir_rag.eval.extract",
    "BM25Retriever": "reasonir_rag.eval.bm25",
    "evaluate_run": "reasonir_rag.eval.ir_metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reasonir_rag.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

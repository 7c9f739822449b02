"""The eval package stays light: heavy dependencies load only where they are used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_eval_modules_import_without_heavy_dependencies():
    code = (
        "import sys, reasonir_rag.eval as e\n"
        "from reasonir_rag.eval import datasets, mmlu, gpqa, prompts, extract, stats, ir_data, ir_metrics, retrieval, "
        "bm25, journal, report\n"
        "assert e.Question is datasets.Question and e.BM25Retriever is bm25.BM25Retriever\n"
        "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'openai', 'bm25s', 'matplotlib', 'scipy', "
        "'datasets') if m in sys.modules]\n"
        "print(heavy); sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

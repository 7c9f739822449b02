"""The core's layers, as ARCHITECTURE.md draws them: every import inside reasonir_rag points down, never up."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reasonir_rag"
# lower number = lower layer; a module may import its own layer or any lower one
LAYERS = {
    "errors": 0, "_version": 0,
    "types": 1, "_deps": 1,
    "protocols": 2, "_common": 2, "sample_data": 2,
    "offline": 3,  # tiny models and SmolLM2 for the tests, the benchmarks and the offline demo
    "llm": 4,
    "encoding": 5,
    "index": 6,
    "pipeline": 7,
    "eval": 8, "bulk": 8,
    "demo": 9, "synth": 9,  # synth: an evaluation set from a corpus (uses llm, index, encoding, eval)
    "cli": 10,
    "__init__": 11, "__main__": 11,  # the facade and the entry point
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "reasonir_rag":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "reasonir_rag"}
    return found


def test_every_room_has_a_layer():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert rooms == set(LAYERS), f"rooms without a layer: {rooms - set(LAYERS)}; gone: {set(LAYERS) - rooms}"


def test_imports_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        here = _room(".".join(rel.parts)) if path.parent != PACKAGE else path.stem
        for target in _imports(path):
            there = _room(target)
            if there != here and LAYERS[there] >= LAYERS[here] and here not in ("__init__", "__main__"):
                upward.append(f"{rel}: imports {target} ({there}, layer {LAYERS[there]} >= {here}'s {LAYERS[here]})")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)

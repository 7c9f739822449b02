"""From a folder of documents to the seed passages: chunk, drop exact duplicates, rank by educational value.

The recipe ranks its passages with ``HuggingFaceTB/fineweb-edu-classifier`` (a sequence-regression model whose raw
output, about 0-5, is the educational value) and keeps the top N scoring at least 1. :class:`EduClassifier`
loads that model, or any folder of the same kind, with ``AutoModelForSequenceClassification`` (safetensors, no
remote code). Where it cannot be loaded (offline, no cache), :func:`load_selector` logs why and falls back to
:class:`LengthSelector` (longest passages first, a floor of words); the manifest records which one ran. The
offline stand-in (:func:`reasonir_rag.offline.build_standin_edu_classifier`: a tiny random BERT regressor with
MiniLM's real tokenizer) loads through the same code path and is named as a stand-in; its scores are
meaningless (mechanics only).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reasonir_rag._deps import require
from reasonir_rag.errors import InvalidInputError, ReasonIRError
from reasonir_rag.index.chunking import chunk_documents
from reasonir_rag.index.loaders import LoadReport, load_documents
from reasonir_rag.offline import STANDIN_MARKER
from reasonir_rag.synth.filters import words
from reasonir_rag.types import Document

logger = logging.getLogger(__name__)

EDU_CLASSIFIER = "HuggingFaceTB/fineweb-edu-classifier"


@dataclass
class Passages:
    """The corpus as passages, exact-text duplicates removed (the first id of each text is kept)."""

    documents: list[Document]
    load: LoadReport
    chunks: int
    duplicates: int
    duplicate_of: dict[str, str] = field(default_factory=dict)


def corpus_passages(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, chunk_tokens: int = 512,
                    overlap: int = 64, text_field: str = "text") -> Passages:
    """Load and chunk the corpus with the project's loader and chunker, then drop exact-text duplicates."""
    report = LoadReport()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    docs = load_documents([Path(p) for p in paths], text_field=text_field, report=report)
    chunks = chunk_documents(docs, chunk_tokens=chunk_tokens, overlap=overlap)
    seen: dict[str, str] = {}
    kept: list[Document] = []
    duplicate_of: dict[str, str] = {}
    for chunk in chunks:
        key = chunk.text.strip()
        if key in seen:
            duplicate_of[chunk.id] = seen[key]
            continue
        seen[key] = chunk.id
        kept.append(chunk)
    return Passages(kept, report, len(chunks), len(duplicate_of), duplicate_of)


class SeedSelector(Protocol):
    """Scores passages: higher is a better seed; passages under ``min_score`` are never seeds."""

    name: str
    kind: str
    min_score: float

    def scores(self, texts: Sequence[str]) -> list[float]: ...


class LengthSelector:
    """Length only: a passage's score is its word count; under ``min_words`` it is no seed."""

    kind = "length"

    def __init__(self, min_words: int = 50):
        self.min_score = float(min_words)
        self.name = f"length (words, >= {min_words})"

    def scores(self, texts: Sequence[str]) -> list[float]:
        return [float(len(words(t))) for t in texts]


class EduClassifier:
    """A FineWeb-Edu-style regressor from the hub or a folder: score = its raw output (the recipe keeps >= 1)."""

    kind = "fineweb-edu-classifier"

    def __init__(self, name_or_path: str = EDU_CLASSIFIER, *, min_score: float = 1.0, device: str | None = None,
                 batch_size: int = 16, max_length: int = 512):
        transformers = require("transformers")
        self.torch = require("torch")
        from reasonir_rag._common.devices import pick_device

        self.name = str(name_or_path)
        self.min_score = min_score
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = pick_device(device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.name)
        self.model = transformers.AutoModelForSequenceClassification.from_pretrained(
            self.name, use_safetensors=True, trust_remote_code=False).to(self.device).eval()
        marker = Path(self.name) / STANDIN_MARKER
        if marker.is_file():  # the offline kit's stand-in names itself
            self.kind = "stand-in"
            self.name = f"{marker.read_text(encoding='utf-8').strip()} at {self.name}"

    def scores(self, texts: Sequence[str]) -> list[float]:
        out: list[float] = []
        with self.torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[start : start + self.batch_size]), return_tensors="pt",
                                       padding="longest", truncation=True, max_length=self.max_length)
                logits = self.model(**batch.to(self.device)).logits.squeeze(-1).float()
                out.extend(float(x) for x in logits.cpu().tolist())
        return out


def load_selector(classifier: str | None = EDU_CLASSIFIER, *, device: str | None = None,
                  min_words: int = 50) -> tuple[SeedSelector, str | None]:
    """The classifier (``None`` or ``"length"``: the length selector), and why it fell back, if it did."""
    if classifier in (None, "", "length", "none"):
        return LengthSelector(min_words), None
    try:
        return EduClassifier(classifier, device=device), None
    except (OSError, ValueError, ImportError, ReasonIRError) as exc:
        why = f"the classifier {classifier!r} could not be loaded ({type(exc).__name__}: {str(exc)[:200]})"
        logger.warning("%s; falling back to length-only seed selection", why)
        return LengthSelector(min_words), why


def select_seeds(passages: Sequence[Document], selector: SeedSelector, n: int) -> list[tuple[Document, float]]:
    """The top ``n`` passages by score among those scoring at least ``min_score`` (ties: corpus order)."""
    if n < 1:
        raise InvalidInputError(f"the number of seeds must be >= 1, got {n}")
    scores = selector.scores([p.text for p in passages])
    ranked = sorted(range(len(passages)), key=lambda i: -scores[i])  # stable: ties keep corpus order
    return [(passages[i], scores[i]) for i in ranked if scores[i] >= selector.min_score][:n]


def describe_selector(selector: Any, fallback_reason: str | None) -> dict[str, Any]:
    return {"kind": selector.kind, "name": selector.name, "min_score": selector.min_score,
            "fallback_reason": fallback_reason}

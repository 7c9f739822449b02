"""The two evaluation protocols, chosen in one place: ``default`` (the project's choices) and ``paper``
(ReasonIR's evaluation code, as it runs).

Both use ReasonIR's prompt layouts and decoding byte for byte. They differ where the project deliberately
does better by default (the README's table of differences says why), and ``paper`` undoes each of those:

- prompt hygiene: the default strips question and choice texts, neutralises chat markers and cleans passages
  (:func:`~reasonir_rag.eval.prompts.clean_passage`); ``paper`` sends every text as it is;
- answer extraction: the default adds a ``\\boxed{}`` rule and counts an unextracted answer as wrong and reports
  it; ``paper`` runs ReasonIR's three MMLU regexes verbatim and then its seeded guess (always "D");
- rewriting: the default is deterministic (temperature 0) and keeps the question before its rewrite;
  ``paper`` samples at temperature 0.8, top_p 0.8 and searches with the rewrite alone;
- reranking: the default reads the 0-5 digit's probabilities in one forward pass; ``paper`` samples 32 tokens
  (temperature 0.6, top_p 0.9) and parses them as ReasonIR's script does;
- BRIGHT lengths: the default encodes 2048 tokens (ReasonIR's training length); ``paper`` 32768;
- RAG retrieval: the default searches with the question and the encoder's query instruction; ``paper`` with
  what ReasonIR's runs searched with (MMLU: lm-eval's prompt with the choices; GPQA: the question field) and
  GritLM's empty instruction, at 512 tokens and fp16 on CUDA (the CLI loads the encoder so; a store built another
  way is named in a warning). On CPU the encoder stays float32: fp16 there is emulated and slow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag._common.names import by_name


@dataclass(frozen=True)
class EvalProtocol:
    """Every choice a protocol makes, in one record (it goes into the report)."""

    name: str
    clean_texts: bool
    extraction: str  # "project" or "reasonir"
    rewriter: Mapping[str, Any] = field(default_factory=dict)  # QueryRewriter settings
    reranker: Mapping[str, Any] = field(default_factory=dict)  # QwenReranker settings
    bright_max_length: int | None = None  # None: the encoder's own (ReasonIR's preset: 2048, its training length)
    retrieval_instruction: str | None = None  # None: the encoder's default; "": GritLM's encode(instruction="")
    retrieval_max_length: int | None = None  # tokens the RAG retriever embeds (None: the encoder's own)
    retrieval_dtype: str | None = None  # the RAG retriever's precision on CUDA (None: the encoder's own)


PROTOCOLS: dict[str, EvalProtocol] = {
    "default": EvalProtocol("default", clean_texts=True, extraction="project"),
    "paper": EvalProtocol(
        "paper", clean_texts=False, extraction="reasonir",
        rewriter={"temperature": 0.8, "top_p": 0.8, "seed": None, "keep_original": False, "clean_texts": False},
        reranker={"mode": "generate", "parse": "reasonir", "temperature": 0.6, "top_p": 0.9, "max_tokens": 32,
                  "seed": None, "max_doc_tokens": None, "clean_texts": False},
        bright_max_length=32768, retrieval_instruction="", retrieval_max_length=512, retrieval_dtype="float16",
    ),
}


def protocol_for(name: str | EvalProtocol) -> EvalProtocol:
    """The protocol called ``name`` (``default`` or ``paper``)."""
    return by_name(PROTOCOLS, name, "protocol")

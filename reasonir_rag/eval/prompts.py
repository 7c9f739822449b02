"""Reader prompts as ReasonIR's evaluation wrote them (facebookresearch/ReasonIR, ``evaluation/rag``).

MMLU (``mmlu_cot``, after MMLU-Pro's zero-shot CoT script): up to 3 passages as one "Related background:"
block before the instruction, then the question with lettered options and "Answer: Let's think step by
step."; the reader ends with "the answer is (X)". GPQA (``gpqa``, after Search-o1's naive RAG workflow):
the naive-RAG instruction with up to 5 passages as "Passage i:" blocks, then the multiple-choice task
prompt asking for ``\\boxed{YOUR_CHOICE}``. Closed-book is the same prompt without the passages (MMLU:
no background block; GPQA: the task prompt alone, as Search-o1's direct baseline).

Passages are data, not instructions: :func:`clean_passage` keeps them from closing the prompt's blocks
(blank lines that would open a new block, lines that mimic the prompt's own markers, chat-template control
tokens such as ``<|im_end|>`` that a tokenizer would read as a turn boundary). Question and choice texts keep
their wording (ReasonIR parity) but lose control tokens too (:func:`neutralise_control_tokens`; no MMLU or
GPQA record has one, so real prompts are unchanged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.datasets import Question
from reasonir_rag.llm.prompts import neutralise_control_tokens
from reasonir_rag.types import ScoredDocument

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]
Passage = str | ScoredDocument

# --- MMLU (ReasonIR evaluation/rag/mmlu_cot; "assistent" is sic, kept for token-exact parity) ------------
MMLU_SYSTEM = "You are a helpful assistent."
MMLU_INSTRUCTION = (
    "The following are multiple choice questions (with answers) about {subject}. Think step by step and then "
    'finish your answer with "the answer is (X)" where X is the correct letter choice.\n\n\n'
)
MMLU_BACKGROUND_HEADER = "Related background:\n"
MMLU_COT_CUE = "Answer: Let's think step by step."

# --- GPQA (ReasonIR evaluation/rag/gpqa: naive_rag workflow + Search-o1 task instruction) ------------------
GPQA_SYSTEM = "You are a helpful assistant."
GPQA_RAG_INSTRUCTION = (
    "You are a knowledgeable assistant that uses the provided documents to answer the user's question.\n\n"
    "Question:\n{question}\nDocuments:\n{documents}\n"
)
GPQA_TASK = {
    "default": (
        "Please answer the following multiple-choice question. You should think step by step to solve it.\n\n"
        "Provide your final choice in the format \\boxed{{YOUR_CHOICE}}.\n\n"
        "Question:\n{question}\n\n"
    ),
    "llama": (
        "Please answer the following multiple-choice question. You should think step by step to solve it.\n\n"
        "Provide your final choice in the format \\boxed{{YOUR_CHOICE}}. Your final choice should be one of the "
        "letters A, B, C, or D, DO NOT include any answer content.\n\n"
        "Question:\n{question}\n\n"
    ),
    "qwq": (
        "Please answer the following multiple-choice question. "
        "You should provide your final choice in the format \\boxed{{YOUR_CHOICE}}.\n\n"
        "Question:\n{question}\n\n"
    ),
}


@dataclass(frozen=True)
class PromptSpec:
    """What a runner needs besides the messages: passages used, extraction style, ReasonIR's decoding."""

    name: str
    top_k: int
    extract_style: str
    generation: dict[str, Any] = field(default_factory=dict)
    templates: tuple[str, ...] = ()

    @property
    def template_hash(self) -> str:
        """Changes whenever a template's wording changes: part of every journal key."""
        return _sha256_json([self.name, self.top_k, list(self.templates)])


MMLU_SPEC = PromptSpec(
    name="mmlu-zero-shot-cot", top_k=3, extract_style="mmlu",
    generation={"temperature": 0.0, "max_tokens": 2048, "stop": ["Question:"]},
    templates=(MMLU_SYSTEM, MMLU_INSTRUCTION, MMLU_BACKGROUND_HEADER, MMLU_COT_CUE),
)
GPQA_SPEC = PromptSpec(
    name="gpqa-naive-rag-boxed", top_k=5, extract_style="gpqa",
    generation={"temperature": 0.7, "top_p": 0.8, "max_tokens": 8000, "frequency_penalty": 1.0},
    templates=(GPQA_SYSTEM, GPQA_RAG_INSTRUCTION, *(GPQA_TASK[k] for k in sorted(GPQA_TASK))),
)
SPECS = {"mmlu": MMLU_SPEC, "gpqa": GPQA_SPEC}

# ------------------------------------------------------------------------------------------ passage hygiene
# Line breaks other than "\n" (a lone CR, U+2028, ...) that a reader may take as a new line: made "\n" so that
# the marker check below sees the line they start.
_LINE_BREAKS = re.compile(r"\r\n?|[\v\f\x1c-\x1e\x85\u2028\u2029]")
# "[^\S\n]": any whitespace but a newline (a no-break or ideographic space hides a marker or a blank line too)
_MARKER_LINE = re.compile(
    r"^(?=[^\S\n]*(?:question|options|choices|answer|documents|related background|passage[^\S\n]*\d+)[^\S\n]*:)",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_LINES = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")


def clean_passage(text: str) -> str:
    """Passage text that cannot close or imitate the prompt's blocks; ordinary text is left as it is."""
    text = _LINE_BREAKS.sub("\n", neutralise_control_tokens(text))
    text = _BLANK_LINES.sub("\n", text.strip())
    return _MARKER_LINE.sub("> ", text)


def _passage_texts(
    passages: Sequence[Passage] | None, top_k: int, max_passage_tokens: int | None,
    truncate: Callable[[str, int], str] | None, clean: bool = True,
) -> list[str]:
    if passages is None:
        return []
    if isinstance(passages, (str, bytes)):
        raise InvalidInputError("passages must be a list of strings or ScoredDocuments, not a single string")
    out = []
    for i, p in enumerate(passages):
        text = p.text if isinstance(p, ScoredDocument) else p
        if not isinstance(text, str):
            raise InvalidInputError(f"passage #{i} is a {type(p).__name__}; expected str or ScoredDocument")
        if max_passage_tokens is not None:
            if truncate is None:
                raise InvalidInputError("max_passage_tokens needs truncate= (e.g. the reader's llm.truncate)")
            text = truncate(text, max_passage_tokens)
        text = clean_passage(text) if clean else text
        if text:
            out.append(text)
        if len(out) == top_k:
            break
    return out


# ------------------------------------------------------------------------------------------------- builders
def question_text(text: str, clean: bool = True) -> str:
    """A question or choice text as a prompt shows it: stripped and without chat markers (the default), or as it
    is (``clean=False``, ReasonIR's ``paper`` protocol)."""
    return neutralise_control_tokens(text.strip()) if clean else text


def _choices_block(question: Question, style: str, clean: bool) -> str:
    pairs = zip(question.letters, (question_text(c, clean) for c in question.choices), strict=True)
    if style == "mmlu":
        return "".join(f"{letter}. {choice}\n" for letter, choice in pairs)
    return "\n".join(f"({letter}) {choice}" for letter, choice in pairs)


def mmlu_messages(
    question: Question, passages: Sequence[Passage] | None = None, *, top_k: int = MMLU_SPEC.top_k,
    max_passage_tokens: int | None = None, truncate: Callable[[str, int], str] | None = None,
    clean: bool = True,
) -> Messages:
    """ReasonIR's MMLU zero-shot CoT chat; ``passages=None`` (or none usable) gives the closed-book prompt.
    ``clean=False`` sends question, choices and passages untouched (the ``paper`` protocol)."""
    texts = _passage_texts(passages, top_k, max_passage_tokens, truncate, clean)
    background = MMLU_BACKGROUND_HEADER + "".join(t + "\n\n" for t in texts) if texts else ""
    subject = neutralise_control_tokens(question.subject) if clean else question.subject
    body = (MMLU_INSTRUCTION.format(subject=subject) + "\n"
            + "Question:\n" + question_text(question.question, clean) + "\n"
            + "Options:\n" + _choices_block(question, "mmlu", clean)
            + MMLU_COT_CUE)
    return [{"role": "system", "content": MMLU_SYSTEM}, {"role": "user", "content": background + body}]


def gpqa_question_block(question: Question, clean: bool = True) -> str:
    """ReasonIR's GPQA question field: the question, a SPACE, ``Choices:``, the (shuffled) choices as ``(A) ...``
    one per line, and a final newline (Search-o1's layout)."""
    choices = _choices_block(question, "gpqa", clean)
    return f"{question_text(question.question, clean)} Choices:\n{choices}\n"


def gpqa_messages(
    question: Question, passages: Sequence[Passage] | None = None, *, top_k: int = GPQA_SPEC.top_k,
    variant: str = "default", max_passage_tokens: int | None = None,
    truncate: Callable[[str, int], str] | None = None, clean: bool = True,
) -> Messages:
    """ReasonIR's GPQA chat (``variant``: Search-o1's per-model wording, "default" for Qwen2.5). Closed-book is
    Search-o1's direct baseline: one user message with the task, no system message."""
    if variant not in GPQA_TASK:
        raise InvalidInputError(f"unknown GPQA prompt variant {variant!r}; choose one of {sorted(GPQA_TASK)}")
    texts = _passage_texts(passages, top_k, max_passage_tokens, truncate, clean)
    block = gpqa_question_block(question, clean)
    task = GPQA_TASK[variant].format(question=block)
    if not texts:
        return [{"role": "user", "content": task}]
    documents = "".join(f"Passage {i + 1}:\n{t}\n\n" for i, t in enumerate(texts)).strip()
    content = GPQA_RAG_INSTRUCTION.format(question=block, documents=documents) + "\n\n" + task
    return [{"role": "system", "content": GPQA_SYSTEM}, {"role": "user", "content": content}]


def retrieval_query(dataset: str, question: Question, clean: bool = True) -> str:
    """What the retriever is asked for a question: the question alone (the default), or, with ``clean=False``,
    what ReasonIR's RAG runs searched with (MMLU: lm-eval's prompt with the choices; GPQA: the question field)."""
    if clean:
        return question_text(question.question)
    if spec_for(dataset).extract_style == "gpqa":
        return gpqa_question_block(question, clean=False)
    options = "".join(f"{letter}. {choice}\n" for letter, choice in zip(question.letters, question.choices,
                                                                         strict=True))
    return (f"The following are multiple choice questions (with answers) about "
            f"{question.subject.replace('_', ' ')}.\n\n{question.question.strip()}\n{options}Answer:")


def build_messages(dataset: str, question: Question, passages: Sequence[Passage] | None = None,
                   **kwargs: Any) -> Messages:
    """:func:`mmlu_messages` or :func:`gpqa_messages` by name (``gpqa_main``, ``gpqa_diamond`` count as gpqa)."""
    kind = spec_for(dataset).extract_style
    return (mmlu_messages if kind == "mmlu" else gpqa_messages)(question, passages, **kwargs)


def spec_for(dataset: str) -> PromptSpec:
    key = "gpqa" if dataset.startswith("gpqa") else dataset
    if key not in SPECS:
        raise InvalidInputError(f"no reader prompt for dataset {dataset!r}; known: mmlu, gpqa")
    return SPECS[key]


def prompt_hash(messages: Messages) -> str:
    """A stable hash of the exact messages sent: keys the reader's journal entries."""
    return _sha256_json(messages)


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

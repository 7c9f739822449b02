"""The reader's chosen letter, found the way ReasonIR's evaluation found it, or None.

MMLU (ReasonIR ``mmlu_cot``): the first ``answer is (X)``, then ``Answer: X``, then (added here) the last
``\\boxed{X}``, then ReasonIR's last resort: the last stand-alone capital letter in the choice range.
GPQA (ReasonIR ``gpqa``, Search-o1): the last ``\\boxed{...}`` (``\\text{}`` and parentheses peeled off, a
boxed choice text mapped back to its letter), then ``answer is (X)`` and ``Answer: X``.

An unextractable answer is None: the caller counts it wrong and reports it as unextracted. ReasonIR
silently replaced those with a random guess; here that happens only when ``random_fallback_seed`` is given,
and the method says so.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from reasonir_rag.errors import InvalidInputError
from reasonir_rag.eval.datasets import LETTERS

_THINK_END = "</think>"


@dataclass(frozen=True)
class Extraction:
    """The choice index (None when unextractable) and which rule found it."""

    index: int | None
    method: str

    @property
    def letter(self) -> str | None:
        return None if self.index is None else LETTERS[self.index]

    @property
    def extracted(self) -> bool:
        return self.index is not None and self.method not in ("random", "guess")


# The patterns are ReasonIR's (MMLU-Pro's), written to run in linear time: a reader that loops until
# max_tokens writes 30,000+ characters, and the original forms (a leading ``.*``, a look-ahead over the rest
# of the text, ``\s*\**\s*`` before a missing letter) took 10-50 s per such answer. ``_LEAD`` is
# ``\s*\**\s*`` made atomic with a look-ahead (Python 3.10 has no possessive quantifiers); the classes are
# disjoint, so giving characters back could never have found another match.
_LEAD = r"(?=(?P<lead>\s*\**\s*))(?P=lead)"


def _answer_is(text: str, letters: str) -> str | None:
    """The FIRST ``answer is (X)``."""
    m = re.search(rf"[Aa]nswer is:?{_LEAD}\(?(?P<letter>[{letters}])\)?\**(?![A-Za-z0-9])", text)
    return m.group("letter") if m else None


def _answer_colon(text: str, letters: str) -> str | None:
    """``re.search(r".*[aA]nswer:...")``: the last ``Answer: X`` on the first line that has one."""
    found = list(re.finditer(rf"[aA]nswer:{_LEAD}\(?(?P<letter>[{letters}])\)?(?![A-Za-z0-9])", text))
    if not found:
        return None
    line_end = text.find("\n", found[0].start())
    same_line = [m for m in found if line_end < 0 or m.start() < line_end]
    return same_line[-1].group("letter")


def _last_letter(text: str, letters: str) -> str | None:
    """The last stand-alone letter in the choice range."""
    found = re.findall(rf"\b[{letters}]\b", text)
    return found[-1] if found else None


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (and ``\\fbox{...}``) with nested braces balanced."""
    closing: dict[int, int] = {}
    opened: list[int] = []
    for m in re.finditer(r"[{}]", text):  # one pass pairs every brace (an unclosed one stays unpaired)
        if m.group() == "{":
            opened.append(m.start())
        elif opened:
            closing[opened.pop()] = m.start()
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        end = closing.get(m.end() - 1)
        if end is not None:
            out.append(text[m.end() : end])
    return out


def _unwrap(content: str) -> str:
    prev = None
    while prev != content:
        prev = content
        content = content.strip().strip("$").strip()
        m = re.fullmatch(r"\\(?:text|textbf|mathrm|mathbf)\s*\{(.*)\}", content, re.DOTALL)
        if m:
            content = m.group(1)
        if len(content) >= 2 and content[0] + content[-1] in ("()", "[]"):
            content = content[1:-1]
    return content.strip()


def _normalize(s: str) -> str:
    return " ".join(s.lower().replace("$", "").split()).rstrip(".")


def _boxed(text: str, letters: str, choices: Sequence[str] | None) -> str | None:
    contents = boxed_contents(text)
    if not contents:
        return None
    content = _unwrap(contents[-1])
    if len(content) == 1 and content.upper() in letters:
        return content.upper()
    m = re.match(rf"(?:option|choice)?\s*\(?([{letters}])\)?(?:[.:)]|\s|$)", content, re.IGNORECASE)
    if m and (content[:1].isupper() or content[:1] in "(" or content.lower().startswith(("option", "choice"))):
        return m.group(1).upper()
    if choices:
        wanted = _normalize(content)
        hits = [i for i, c in enumerate(choices) if _normalize(c) == wanted]
        if len(hits) == 1:
            return letters[hits[0]]
    return None


_RULES = {
    "answer_is": lambda t, L, c: _answer_is(t, L),
    "answer_colon": lambda t, L, c: _answer_colon(t, L),
    "boxed": _boxed,
    "last_letter": lambda t, L, c: _last_letter(t, L),
}
STYLES = {
    "mmlu": ("answer_is", "answer_colon", "boxed", "last_letter"),
    "gpqa": ("boxed", "answer_is", "answer_colon"),
}


def extract_choice(
    text: str | None, *, style: str = "mmlu", n_choices: int = 4, choices: Sequence[str] | None = None,
    random_fallback_seed: int | None = None, key: str = "",
) -> Extraction:
    """Which choice ``text`` (a reader's output) picked, by ``style``'s rules in order.

    Text after a closing ``</think>`` is searched first (reasoning models), then the whole output.
    ``choices`` lets a boxed answer that repeats a choice's text count. With ``random_fallback_seed``, an
    unextractable answer becomes a guess seeded by (seed, ``key``) with method ``"random"``.
    """
    if style not in STYLES:
        raise InvalidInputError(f"unknown extraction style {style!r}; choose one of {sorted(STYLES)}")
    if not 2 <= n_choices <= len(LETTERS):
        raise InvalidInputError(f"n_choices must be in 2..{len(LETTERS)}, got {n_choices}")
    letters = LETTERS[:n_choices]
    if isinstance(text, str) and text.strip():
        segments = [text.rsplit(_THINK_END, 1)[1], text] if _THINK_END in text else [text]
        for segment in segments:
            for rule in STYLES[style]:
                letter = _RULES[rule](segment, letters, choices)
                if letter is not None:
                    return Extraction(letters.index(letter), rule)
    if random_fallback_seed is not None:
        rng = random.Random(f"{random_fallback_seed}:{key}")
        return Extraction(rng.randrange(n_choices), "random")
    return Extraction(None, "none")


# ------------------------------------------------------------------------------------ the paper protocol
# ReasonIR's own (evaluation/rag/mmlu_cot), verbatim, in its order; then its guess: ``random.seed(12345)`` before
# every ``random.randint(0, 3)``, so every miss is 3 ("D"). These patterns are the reference; the rules that run
# are ``_REASONIR_SEARCH``, which return the same match in linear time (the last two patterns are quadratic: 6 s
# and 2.5 s on 30,000-character answers; tests/eval/test_protocol.py checks the equivalence on random texts).
REASONIR_MMLU_RULES = (
    ("answer_is", re.compile(r"answer is \(?([A-D])\)?")),
    ("answer_colon", re.compile(r".*[aA]nswer:\s*([A-D])")),
    ("last_letter", re.compile(r"\b[A-D]\b(?!.*\b[A-D]\b)", re.DOTALL)),
)
REASONIR_GUESS_SEED = 12345
_REASONIR_BOXED = re.compile(r"\\boxed\{(.*)\}")
_REASONIR_TEXT = re.compile(r"\\text\{(.*)\}")
_ANSWER_COLON_AT = re.compile(r"(?=[aA]nswer:\s*(?P<letter>[A-D]))")
_STANDALONE_LETTER = re.compile(r"\b[A-D]\b")


def _reasonir_answer_is(text: str) -> str | None:
    found = REASONIR_MMLU_RULES[0][1].search(text)
    return found.group(1) if found else None


def _reasonir_answer_colon(text: str) -> str | None:
    """``.*[aA]nswer:\\s*([A-D])``: ``.`` stops at ``\\n``, so the first line with a match start wins, and the
    greedy ``.*`` takes the last start on it (starts may overlap: ``answer: Answer: B`` gives B)."""
    first = _ANSWER_COLON_AT.search(text)
    if first is None:
        return None
    line_end = text.find("\n", first.start())
    letter = first.group("letter")
    for found in _ANSWER_COLON_AT.finditer(text, first.start() + 1):
        if 0 <= line_end < found.start():
            break
        letter = found.group("letter")
    return letter


def _reasonir_last_letter(text: str) -> str | None:
    """``\\b[A-D]\\b(?!.*\\b[A-D]\\b)`` (DOTALL): the last stand-alone letter."""
    found = _STANDALONE_LETTER.findall(text)
    return found[-1] if found else None


_REASONIR_SEARCH = (("answer_is", _reasonir_answer_is), ("answer_colon", _reasonir_answer_colon),
                    ("last_letter", _reasonir_last_letter))


def extract_reasonir_mmlu(text: str | None) -> Extraction:
    """ReasonIR's MMLU extraction exactly: its three regexes, then its seeded guess (method ``"guess"``)."""
    text = text if isinstance(text, str) else ""
    for rule, search in _REASONIR_SEARCH:
        letter = search(text)
        if letter is not None:
            return Extraction(LETTERS.index(letter), rule)
    return Extraction(random.Random(REASONIR_GUESS_SEED).randint(0, 3), "guess")


def reasonir_gpqa_answer(text: str | None) -> str:
    """ReasonIR's (Search-o1's) GPQA answer: the last ``\\boxed{...}`` (greedy, one line), else the last
    ``\\text{...}``, with ``()`` stripped, lower-cased, whitespace collapsed; ``""`` when neither is there."""
    text = text if isinstance(text, str) else ""
    found = _REASONIR_BOXED.findall(text) or _REASONIR_TEXT.findall(text)
    return " ".join(found[-1].strip("()").lower().split()) if found else ""


def extract_reasonir_gpqa(text: str | None, n_choices: int = 4) -> tuple[Extraction, str]:
    """(the choice the answer names when it is exactly a letter, the answer as ReasonIR compares it)."""
    answer = reasonir_gpqa_answer(text)
    letters = LETTERS[:n_choices].lower()
    if len(answer) == 1 and answer in letters:
        return Extraction(letters.index(answer), "boxed"), answer
    return Extraction(None, "none"), answer

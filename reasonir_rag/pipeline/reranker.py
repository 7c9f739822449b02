"""ReasonIR's pointwise LLM reranker: a 0-5 relevance score per (query, document), tie-broken by the retriever.

Prompts are ReasonIR's own (:mod:`reasonir_rag.llm.prompts`). ``mode="logits"`` (default) puts the answer
prefix ``"Relevance score: "`` right after the prompt and reads the log-probs of "0".."5" at the next position
in ONE forward pass; the score is their expected value after renormalising over the digits (deterministic and
far cheaper than generating). ``mode="generate"`` reproduces ReasonIR's script: sample 32 tokens
(temperature 0.6, top-p 0.9) and parse the number after the last "Relevance score:".

Final score = ``alpha * rerank/5 + (1 - alpha) * retrieval score``: a weighted sum (ReasonIR's, alpha 0.5), not a
tie-break; a retrieval score moves documents across rerank levels. A document without a retrieval score (a
``Document`` or a string, e.g. from another store) is blended with the LOWEST retrieval score of the documents that
have one; when none has one, the final score is ``rerank/5`` alone (so it spans 0-1, never capped at 0.5).

``template="raw"`` (default) sends the prompt as plain text, as ReasonIR's script did (``LLM.generate`` on the
formatted prompt, no chat template); ``template="chat"`` wraps it in the model's chat template as a user turn
with the answer prefix as the start of the assistant turn (through a server without a local tokenizer: the chat
endpoint with ``continue_final_message``).

Failure policy (``on_error``), per document, never shifting other documents' scores:
- ``"zero"`` (default): rerank score 0 (what ReasonIR's script gives an answer without a score), logged, and
  the reason kept in ``metadata["rerank_error"]``;
- ``"raise"``: raise :class:`RerankError` naming the document.
A failure is: the backend failed for that document (after its retries), no digit among a server's top
log-probs, or (generate mode) no score could be parsed from the answer. Empty documents score 0 without a call.
A backend that is unavailable (its :class:`~reasonir_rag.llm.LLMError` says ``transient``: server down, 5xx or
429 after every retry) raises instead: that is no verdict on any document, and a resumable job must redo it.
Generate mode keeps the model's answer in ``metadata["rerank_output"]``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any, Literal

from reasonir_rag._common.steps import adrive, drive
from reasonir_rag.errors import InvalidInputError, RerankError
from reasonir_rag.llm import load_llm
from reasonir_rag.llm.base import LLMCall, acall_llm, call_llm
from reasonir_rag.llm.prompts import ANSWER_PREFIX, RERANK_DELIMITERS, neutralise_control_tokens, rerank_prompt
from reasonir_rag.protocols import LLM
from reasonir_rag.types import Document, ScoredDocument

logger = logging.getLogger(__name__)
# How many retrieved candidates the reranker chooses from: ReasonIR reranks the top 100.
RERANK_CANDIDATES = 100

DEFAULT_RERANKER = "Qwen/Qwen2.5-7B-Instruct"
DIGITS = tuple(str(d) for d in range(6))
_SENTINEL = "\x00REASONIR_RAG_DOCUMENT\x00"
# tokens kept free under max_prompt_tokens: one for the answer, a few for merges where the pieces are joined
_SEAM_MARGIN = 5
_SCORE = re.compile(r"relevance score:\s*\**\s*([0-5](?:\.\d+)?)", re.IGNORECASE)
_BARE_SCORE = re.compile(r"^\W*([0-5](?:\.\d+)?)\W*$")


def parse_score(text: str) -> float | None:
    """The 0-5 score in a generated answer: the number after the LAST "Relevance score:" (as ReasonIR reads it),
    else a bare number that is the whole answer (e.g. ``"4."``); None when neither is there."""
    found = _SCORE.findall(text or "")
    if found:
        return float(found[-1])
    bare = _BARE_SCORE.match((text or "").strip())
    return float(bare.group(1)) if bare else None


def reasonir_score(text: str) -> float:
    """ReasonIR's script's parse, on this class's 0-5 scale: ``float(out[pos+16:pos+18])`` after the last
    "Relevance score:", 0 when the phrase is absent, and ReasonIR's -1 (its scores are divided by 5, the -1 is
    not) when the two characters are not a number, so -5 here."""
    pos = text.rfind("Relevance score:")
    if pos == -1:
        return 0.0
    try:
        return float(text[pos + 16 : pos + 18])
    except ValueError:
        return -5.0


def expected_score(logprobs: dict[str, float], digits: Sequence[str] = DIGITS) -> tuple[float, float] | None:
    """(expected 0-5 score, probability mass the digits had) from the digits' log-probs, renormalised over the
    digits present; None when no digit is present."""
    present = [(int(d.strip()), logprobs[d]) for d in digits if d in logprobs and logprobs[d] > -math.inf]
    if not present:
        return None
    top = max(lp for _, lp in present)
    weights = [(v, math.exp(lp - top)) for v, lp in present]
    total = sum(w for _, w in weights)
    return sum(v * w for v, w in weights) / total, total * math.exp(top)


class QwenReranker:
    """Rerank retrieved documents with an instruction-tuned LLM (Qwen2.5-7B-Instruct by default).

    ``llm_or_model``: an :class:`~reasonir_rag.llm.LLM` backend, or a spec for :func:`~reasonir_rag.llm.load_llm`
    (a hub id or folder runs locally with transformers; ``openai:NAME`` uses a server). ``max_doc_tokens`` caps
    each document; ``max_prompt_tokens`` (a served model's context length) caps the whole prompt, cutting the
    document first and a very long query only when nothing else fits. ``temperature``, ``top_p``,
    ``max_tokens`` and ``seed`` apply to ``mode="generate"`` (ReasonIR: 0.6, 0.9, 32).
    """

    def __init__(
        self,
        llm_or_model: LLM | str = DEFAULT_RERANKER,
        *,
        alpha: float = 0.5,
        top_n: int | None = None,
        max_doc_tokens: int | None = 2048,
        max_prompt_tokens: int | None = None,
        mode: Literal["logits", "generate"] = "logits",
        task: str | None = None,
        template: Literal["raw", "chat"] = "raw",
        on_error: Literal["zero", "raise"] = "zero",
        temperature: float = 0.6,
        top_p: float = 0.9,
        max_tokens: int = 32,
        seed: int | None = 0,
        parse: Literal["project", "reasonir"] = "project",
        clean_texts: bool = True,
        device: str | None = None,
        dtype: Any = None,
    ):
        if not 0.0 <= alpha <= 1.0:
            raise InvalidInputError(f"alpha must be within [0, 1], got {alpha}")
        if mode not in ("logits", "generate"):
            raise InvalidInputError(f"mode must be 'logits' or 'generate', got {mode!r}")
        if template not in ("chat", "raw"):
            raise InvalidInputError(f"template must be 'chat' or 'raw', got {template!r}")
        if parse not in ("project", "reasonir"):
            raise InvalidInputError(f"parse must be 'project' or 'reasonir', got {parse!r}")
        if on_error not in ("zero", "raise"):
            raise InvalidInputError(f"on_error must be 'zero' or 'raise', got {on_error!r}")
        if (max_doc_tokens is not None and max_doc_tokens < 1) or (max_prompt_tokens is not None
                                                                    and max_prompt_tokens < 64):
            raise InvalidInputError("max_doc_tokens must be >= 1 and max_prompt_tokens >= 64")
        self.llm: LLM = load_llm(llm_or_model, device=device, dtype=dtype) if isinstance(llm_or_model, str) \
            else llm_or_model
        self.alpha, self.top_n, self.mode, self.task = alpha, top_n, mode, task
        self.template, self.on_error, self.parse, self.clean_texts = template, on_error, parse, clean_texts
        self.max_doc_tokens, self.max_prompt_tokens = max_doc_tokens, max_prompt_tokens
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed
        self.answer_prefix, self.digits = self._digit_layout()
        self._specials = tuple(_special_tokens(self.llm))

    def __repr__(self) -> str:
        return f"QwenReranker({self.llm!r}, mode={self.mode!r}, alpha={self.alpha})"

    # ------------------------------------------------------------------ public
    def rerank(
        self, query: str, docs: Sequence[ScoredDocument | Document | str], top_n: int | None = None,
        task: str | None = None,
    ) -> list[ScoredDocument]:
        """Documents sorted by the final score, best first (copies; ``metadata`` gains ``rerank_score`` 0-5 and
        ``retrieval_score``, plus ``rerank_digit_mass`` in logits mode, ``rerank_truncated`` for cut documents
        and ``rerank_error`` for failures). Ties keep the input order. Plain strings get ids "0", "1", ...; strings
        and Documents have no retrieval score (``retrieval_score`` None; the blend rule is the module docstring's)."""
        return drive(self._reranking(query, docs, top_n, task), self._call)

    async def arerank(
        self, query: str, docs: Sequence[ScoredDocument | Document | str], top_n: int | None = None,
        task: str | None = None,
    ) -> list[ScoredDocument]:
        """:meth:`rerank` with the LLM call awaited (an async backend holds no thread; one without runs in a worker
        thread)."""
        return await adrive(self._reranking(query, docs, top_n, task), self._acall)

    def score(self, query: str, texts: Sequence[str], task: str | None = None) -> list[float]:
        """The 0-5 rerank score of each text, in order (failures per ``on_error``)."""
        return drive(self._scoring(query, list(texts), task), self._call)[0]

    async def ascore(self, query: str, texts: Sequence[str], task: str | None = None) -> list[float]:
        """:meth:`score` with the LLM call awaited."""
        return (await adrive(self._scoring(query, list(texts), task), self._acall))[0]

    def prompts(self, query: str, texts: Sequence[str], task: str | None = None) -> list[Any]:
        """Exactly what would be sent for each text: a full prompt string, or chat messages for servers that
        render the chat template themselves (documents already neutralised and truncated)."""
        if query is None or not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"the rerank query must be a non-empty string, got {query!r:.60}")
        notes: list[dict[str, Any]] = [{} for _ in texts]
        built, shared = self._prompts(query, list(texts), task, notes, list(range(len(texts))))
        return [shared + p if isinstance(p, str) else p for p in built]

    # ------------------------------------------------------------------ scoring, written once for both callers
    def _call(self, call: LLMCall) -> Any:
        return call_llm(self.llm, call)

    async def _acall(self, call: LLMCall) -> Any:
        return await acall_llm(self.llm, call)

    def _reranking(self, query: str, docs: Any, top_n: int | None,
                   task: str | None) -> Generator[LLMCall, Any, list[ScoredDocument]]:
        docs = list(docs) if docs is not None and not isinstance(docs, (str, bytes)) else docs
        items = _as_scored(docs)
        retrieval = _retrieval_scores(docs, items)
        scores, notes = yield from self._scoring(query, [d.text for d in items], task)
        alpha = self.alpha if any(r is not None for r in retrieval) else 1.0  # no retrieval score at all: rerank alone
        floor = min((r for r in retrieval if r is not None), default=0.0)
        out = []
        for doc, own, score, note in zip(items, retrieval, scores, notes, strict=True):
            meta = {**doc.metadata, "rerank_score": score, "retrieval_score": own, **note}
            final = alpha * score / 5.0 + (1.0 - alpha) * (floor if own is None else own)
            out.append(replace(doc, metadata=meta, score=final))
        order = sorted(range(len(out)), key=lambda i: -out[i].score)
        n = top_n if top_n is not None else self.top_n
        return [out[i] for i in order][: n if n is not None else len(out)]

    def _scoring(self, query: str, texts: list[str],
                 task: str | None) -> Generator[LLMCall, Any, tuple[list[float], list[dict[str, Any]]]]:
        """Each text's 0-5 score and notes; yields the one batched LLM call (steps.py)."""
        if query is None or not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"the rerank query must be a non-empty string, got {query!r:.60}")
        notes: list[dict[str, Any]] = [{} for _ in texts]
        scores = [0.0] * len(texts)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        for i in sorted(set(range(len(texts))) - set(todo)):
            self._fail(notes, i, "empty document")
        if not todo:
            return scores, notes
        prompts, shared = self._prompts(query, [texts[i] for i in todo], task, notes, todo)
        if self.mode == "logits":
            results = yield LLMCall("next_token_logprobs", (prompts, self.digits),
                                    dict(shared_prefix=shared, return_exceptions=True))
        else:  # generation has no shared-prefix argument: send the whole prompt (instructions + query + document)
            prompts = [shared + p if isinstance(p, str) else p for p in prompts]
            results = yield LLMCall("generate", (prompts,), dict(
                max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                return_exceptions=True))
        unavailable = next((r for r in results if getattr(r, "transient", False)), None)
        if unavailable is not None:  # the server is gone, not this document: zeros would pass for real scores
            raise unavailable
        for i, result in zip(todo, results, strict=True):
            if isinstance(result, BaseException):
                self._fail(notes, i, f"{type(result).__name__}: {result}")
            elif self.mode == "logits":
                got = expected_score(result, self.digits)
                if got is None:
                    self._fail(notes, i, "no score digit among the returned log-probs")
                else:
                    scores[i], notes[i]["rerank_digit_mass"] = got
            elif self.parse == "reasonir":
                notes[i]["rerank_output"] = result
                scores[i] = reasonir_score(result)
            else:
                notes[i]["rerank_output"] = result
                parsed = parse_score(result)
                if parsed is None:
                    self._fail(notes, i, f"no score in the answer {result[:80]!r}")
                else:
                    scores[i] = parsed
        failed = sum("rerank_error" in n for n in notes)
        if failed:
            logger.warning("reranking: %d of %d documents could not be scored; they get 0 (see rerank_error)",
                           failed, len(texts))
        return scores, notes

    def _fail(self, notes: list[dict[str, Any]], i: int, why: str) -> None:
        if self.on_error == "raise":
            raise RerankError(f"document #{i} could not be scored: {why}")
        notes[i]["rerank_error"] = why

    def _prompts(self, query: str, docs: list[str], task: str | None, notes, todo) -> tuple[list[Any], str]:
        """One prompt per document and the prefix they share. Only documents are ever truncated."""
        template = rerank_prompt(task if task is not None else self.task)
        query = self._neutralise(query).replace("\x00", "")
        head, tail, messages = self._frame(template, query)
        fixed = self.llm.count_tokens(head) + self.llm.count_tokens(tail)
        budget = self.max_doc_tokens
        if self.max_prompt_tokens is not None:
            room = self.max_prompt_tokens - fixed - _SEAM_MARGIN
            if room < 32:  # the query leaves (almost) no room: cut the query, never the instructions
                q_tokens = self.llm.count_tokens(query)
                keep = q_tokens - (32 - room)
                if keep < 1:
                    raise InvalidInputError(
                        f"the reranker prompt without query and document already takes {fixed - q_tokens}"
                        f" tokens; max_prompt_tokens={self.max_prompt_tokens} is too small")
                logger.warning("the rerank query (%d tokens) is cut to %d to leave room for documents", q_tokens, keep)
                query = self.llm.truncate(query, keep)
                head, tail, messages = self._frame(template, query)
                room = self.max_prompt_tokens - self.llm.count_tokens(head) - self.llm.count_tokens(tail) - _SEAM_MARGIN
            budget = max(1, room) if budget is None else min(budget, max(1, room))
        cut = 0
        bodies = []
        for j, doc in enumerate(docs):
            doc = self._neutralise(doc)
            short = doc if budget is None else self.llm.truncate(doc, budget)
            if len(short) < len(doc):
                cut += 1
                notes[todo[j]]["rerank_truncated"] = True
            bodies.append(short)
        if cut:
            logger.info("reranking: %d of %d documents cut to %d tokens", cut, len(docs), budget)
        if messages is not None:
            return [_fill(messages, body) for body in bodies], ""
        lead = head[len(head.rstrip(" ")):]  # a space before the document belongs to the document's tokens
        return [lead + body + tail for body in bodies], head[: len(head) - len(lead)]

    def _frame(self, template: str, query: str) -> tuple[str, str, list[dict[str, str]] | None]:
        """Split the full prompt around the document: (head, tail, None), or (…, messages) for servers that
        render chat themselves."""
        user = template.format(query, _SENTINEL)
        with_prefix = self.mode == "logits"
        if self.template == "raw":
            text = user + (self.answer_prefix if with_prefix else "")
        else:
            messages = [{"role": "user", "content": user}]
            if with_prefix:
                messages.append({"role": "assistant", "content": self.answer_prefix})
            try:
                text = self.llm.render_chat(messages, add_generation_prompt=not with_prefix,
                                            continue_final_message=with_prefix)
            except NotImplementedError:
                before, after = user.split(_SENTINEL)
                return before, after + (self.answer_prefix if with_prefix else ""), messages
        if text.count(_SENTINEL) != 1:
            raise InvalidInputError("the chat template altered the document placeholder; use template='raw'")
        head, tail = text.split(_SENTINEL)
        return head, tail, None

    def _digit_layout(self) -> tuple[str, tuple[str, ...]]:
        """Where the digit token starts: ``"Relevance score: " + "4"`` (Qwen2.5, Llama 3, SmolLM2 split the space
        off) or ``"Relevance score:" + " 4"`` (tokenizers with space-digit tokens)."""
        spaced = ANSWER_PREFIX + " "
        if self.llm.tokenize("4") is None:
            return spaced, DIGITS

        def tok(text: str) -> list[int]:  # the backend has a local tokenizer (checked above)
            return self.llm.tokenize(text) or []

        if all(len(tok(d)) == 1 for d in DIGITS) and tok(spaced + "4") == tok(spaced) + tok("4"):
            return spaced, DIGITS
        joined = tuple(" " + d for d in DIGITS)
        if all(len(tok(d)) == 1 for d in joined) and tok(ANSWER_PREFIX + " 4") == tok(ANSWER_PREFIX) + tok(" 4"):
            return ANSWER_PREFIX, joined
        if self.mode == "logits":
            raise InvalidInputError(f"{self.llm!r}: the score digits are not single tokens after {ANSWER_PREFIX!r}; "
                             "use mode='generate'")
        return spaced, DIGITS

    def _neutralise(self, text: str) -> str:
        """User text cannot close the prompt's own blocks, open chat turns or spell the model's special tokens
        (``clean_texts=False``: sent as it is, as ReasonIR's script does)."""
        if not self.clean_texts:
            return text
        return neutralise_control_tokens(text, delimiters=RERANK_DELIMITERS, specials=self._specials)


def _fill(messages: list[dict[str, str]], body: str) -> list[dict[str, str]]:
    return [{**m, "content": m["content"].replace(_SENTINEL, body)} for m in messages]


def _special_tokens(llm: Any) -> list[str]:
    tok = getattr(llm, "tokenizer", None)
    if tok is None:
        return []
    found = set(getattr(tok, "all_special_tokens", []) or [])
    for added in (getattr(tok, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            found.add(str(added))
    return sorted((s for s in found if len(s) > 1), key=len, reverse=True)


def _retrieval_scores(given: Any, items: list[ScoredDocument]) -> list[float | None]:
    """Each document's own retrieval score: a ScoredDocument's, None for a Document or a string (no score)."""
    return [d.score if isinstance(g, ScoredDocument) else None for g, d in zip(given, items, strict=True)]


def _as_scored(docs: Any) -> list[ScoredDocument]:
    """Documents as ScoredDocument copies, or one error naming every bad item."""
    if docs is None or isinstance(docs, (str, bytes)):
        raise InvalidInputError(f"docs must be a list of ScoredDocument, Document or str, got {type(docs).__name__}")
    out: list[ScoredDocument] = []
    problems: list[str] = []
    for i, d in enumerate(docs):
        if isinstance(d, ScoredDocument):
            if not isinstance(d.text, str):
                problems.append(f"#{i} ({d.id}) has text of type {type(d.text).__name__}")
                continue
            score = d.score
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
                problems.append(f"#{i} ({d.id}) has a non-finite or non-numeric score {score!r}")
                continue
            out.append(d)
        elif isinstance(d, Document):
            if not isinstance(d.text, str):
                problems.append(f"#{i} ({d.id}) has text of type {type(d.text).__name__}")
                continue
            out.append(ScoredDocument(d.id, d.text, dict(d.metadata), 0.0))
        elif isinstance(d, str):
            out.append(ScoredDocument(str(i), d, {}, 0.0))
        else:
            problems.append(f"#{i} is {type(d).__name__}")
    if problems:
        raise InvalidInputError(f"{len(problems)} document(s) cannot be reranked: " + "; ".join(problems[:5]))
    return out

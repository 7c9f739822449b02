"""ReasonIRQueryRewriter: the core rewrite as a str -> str Runnable; batches in one core call; callbacks; async."""

from __future__ import annotations

from typing import Any

import pytest
from reasonir_rag.errors import InvalidInputError
from reasonir_rag.pipeline.rewriter import QueryRewriter

from langchain_reasonir import ReasonIRQueryRewriter

from ..helpers import RunRecorder

QUESTIONS = ["How do cells make their energy?", "why does ice float?"]  # as in test_retriever: cached rewrites


class CountingLLM:
    """Delegates to a real LLM backend and counts the batched generate calls it receives."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.model_name = llm.model_name
        self.generate_calls: list[int] = []

    def generate(self, prompts, **kwargs):
        self.generate_calls.append(len(prompts))
        return self._llm.generate(prompts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def test_invoke_is_the_core_rewrite_and_is_traced(smollm2_rewriter):
    rewriter = ReasonIRQueryRewriter(rewriter=smollm2_rewriter)
    rec = RunRecorder()
    out = rewriter.invoke(QUESTIONS[0], config={"callbacks": [rec], "run_name": "rewrite"})
    assert out == smollm2_rewriter.rewrite(QUESTIONS[0])  # second call: from the rewrite cache
    assert out.startswith(QUESTIONS[0] + "\n\n") and rewriter.prefix_kind == "query"
    start = rec.first("chain_start", "rewrite")
    assert start["payload"] == QUESTIONS[0] and rec.end_of(start)["payload"] == out


def test_batch_is_one_core_call_one_run_per_input_and_a_bad_input_fails_alone(smollm2_local):
    llm = CountingLLM(smollm2_local)
    rewriter = ReasonIRQueryRewriter(rewriter=llm)  # an LLM backend: wrapped in a ReasonIR-style QueryRewriter
    assert isinstance(rewriter.rewriter, QueryRewriter)
    rewriter.rewriter.max_tokens = 8
    with pytest.raises(InvalidInputError, match=r"#1 is empty"):
        rewriter.batch([QUESTIONS[0], ""])
    assert llm.generate_calls == []  # checked before any LLM work
    rec = RunRecorder()
    outs = rewriter.batch([QUESTIONS[0], "  ", QUESTIONS[1], None], config={"callbacks": [rec]},
                          return_exceptions=True)
    assert llm.generate_calls == [2]  # the good ones went in one call
    assert outs[0].startswith(QUESTIONS[0] + "\n\n") and outs[2].startswith(QUESTIONS[1] + "\n\n")
    assert isinstance(outs[1], InvalidInputError) and "empty or whitespace" in str(outs[1])
    assert isinstance(outs[3], InvalidInputError) and "NoneType" in str(outs[3])
    starts = [e for e in rec.events if e["event"] == "chain_start"]
    assert len(starts) == 4 and sorted(map(str, (e["payload"] for e in starts))) == sorted(
        map(str, [QUESTIONS[0], "  ", QUESTIONS[1], None]))


@pytest.mark.asyncio
async def test_async_matches_sync(smollm2_rewriter):
    rewriter = ReasonIRQueryRewriter(rewriter=smollm2_rewriter)
    assert await rewriter.ainvoke(QUESTIONS[0]) == rewriter.invoke(QUESTIONS[0])
    assert await rewriter.abatch(QUESTIONS) == rewriter.batch(QUESTIONS)


def test_hyde_reports_the_document_prefix_and_bad_construction(smollm2_local):
    assert ReasonIRQueryRewriter(rewriter=QueryRewriter(smollm2_local, style="hyde")).prefix_kind == "document"
    with pytest.raises(TypeError, match="QueryRewriter or a LangChain chat or completion model"):
        ReasonIRQueryRewriter(rewriter="not a rewriter")
    with pytest.raises(ValueError, match="Extra inputs"):
        ReasonIRQueryRewriter(rewriter=smollm2_local, style="hyde")

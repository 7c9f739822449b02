"""QueryRewriter: ReasonIR's prompt, budgets measured with the target encoder's tokenizer, HyDE's prefix, the
persistent cache, and failure handling."""

from __future__ import annotations

import pytest

from reasonir_rag.encoding.encoder import ReasonIREncoder
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.rewriter import QueryRewriter, RewriteCache
from tests.llm.helpers import free_port

QUESTION = "Why does ice float on water?"


@pytest.fixture(scope="module")
def short_encoder(tiny_reasonir_dir):
    """The tiny ReasonIR-shaped encoder (real Llama-3.1 tokenizer) with a 64-token window, so cuts happen."""
    return ReasonIREncoder.from_pretrained(str(tiny_reasonir_dir), device="cpu", max_length=64)


def test_prompt_is_reasonirs(tiny_qwen_llm):
    rw = QueryRewriter(tiny_qwen_llm, max_tokens=512)
    system, user = rw.prompt("line one\nline two")
    assert system == {"role": "system", "content": "You are a helpful assistant"}
    assert user["content"] == (
        "line one line two\n\nInstructions:\n1. Identify the essential problem.\n2. Think step by step to reason "
        "and describe what information could be relevant and helpful to address the questions in detail.\n"
        "3. Draft an answer with as many thoughts as you have.\nYour answer must be written within 512 tokens.")
    hyde = QueryRewriter(tiny_qwen_llm, style="hyde").prompt(QUESTION)[-1]["content"]
    assert hyde == f"Please write a passage to answer the question.\nQuestion: {QUESTION}\nPassage:"


def test_smollm2_rewrites_are_longer_and_fit_the_encoder(smollm2_llm, short_encoder, tmp_path):
    rw = QueryRewriter(smollm2_llm, max_tokens=90, encoder=short_encoder, task="biology",
                       cache=tmp_path / "rewrites.sqlite")
    questions = [QUESTION, "What makes the sky blue?"]
    first = rw.rewrite_queries(questions)
    budget = short_encoder.text_budget(short_encoder.query_prefix(task="biology"))
    for q, r in zip(questions, first, strict=True):
        assert r.prefix_kind == "query" and r.error is None and not r.cached
        assert r.text.startswith(q + "\n\n")  # keep_original: the question first, then the rewrite
        assert len(r.text) > len(q) and short_encoder.count_tokens(r.text) <= budget
        assert r.truncated == (short_encoder.count_tokens(q + "\n\n" + r.generated) > budget)
    assert any(r.truncated for r in first)  # 90 generated tokens do not fit a 64-token window
    again = rw.rewrite_queries(questions)  # temperature 0 + cache: same text, no generation
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
    assert len(RewriteCache(tmp_path / "rewrites.sqlite")) == 2


def test_hyde_wants_the_document_prefix(smollm2_llm, short_encoder):
    rw = QueryRewriter(smollm2_llm, style="hyde", max_tokens=40, encoder=short_encoder, keep_original=False)
    r = rw.rewrite_query(QUESTION)
    assert r.prefix_kind == "document" and r.text and r.text == r.generated[: len(r.text)]
    assert rw.budget == short_encoder.text_budget(short_encoder.document_prefix)
    assert short_encoder.count_tokens(r.text) <= rw.budget


def test_without_an_encoder_the_llm_tokenizer_measures(smollm2_llm):
    rw = QueryRewriter(smollm2_llm, max_tokens=30, max_length=20, keep_original=False)
    (r,) = rw.rewrite_queries([QUESTION])
    assert r.error is None and r.truncated
    assert smollm2_llm.count_tokens(r.text) <= 20 and r.generated.startswith(r.text)


def test_bad_input(tiny_qwen_llm):
    rw = QueryRewriter(tiny_qwen_llm, max_tokens=4)
    with pytest.raises(InvalidInputError, match=r"#1 is empty.*#2 is NoneType"):
        rw.rewrite_many(["fine", "  ", None])
    with pytest.raises(InvalidInputError):
        rw.rewrite("")
    with pytest.raises(InvalidInputError, match="got NoneType"):
        rw.rewrite_many(None)
    with pytest.raises(ValueError, match="style"):
        QueryRewriter(tiny_qwen_llm, style="poetry")


def test_a_dead_server_falls_back_to_the_question_or_raises():
    dead = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff=0.01)
    r = QueryRewriter(dead, max_tokens=8).rewrite_query(QUESTION)
    assert r.text == QUESTION and r.generated == "" and "APIConnectionError" in r.error
    hyde = QueryRewriter(dead, style="hyde", max_tokens=8).rewrite_query(QUESTION)
    assert hyde.text == QUESTION and hyde.prefix_kind == "query"  # the fallback is a question, not a passage
    with pytest.raises(LLMError, match="failed after 2 attempts"):
        QueryRewriter(dead, max_tokens=8, on_error="raise").rewrite(QUESTION)

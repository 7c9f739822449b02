"""Exact digit log-probs from a served model: vLLM's ``logprob_token_ids`` against the local TransformersLLM on the
same pairs, and the once-only probe that falls back to the top-k path on a server without it."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from reasonir_rag.llm import OpenAICompatibleLLM
from reasonir_rag.pipeline.reranker import DIGITS, QwenReranker
from tests.llm.helpers import SERVED_NAME, ScriptedServer, completion_body

QUERY = "What is the boiling point of water?"
DOCS = ["The boiling point of water is 100 degrees Celsius.", "Paris is the capital of France.",
        "Plants absorb carbon dioxide from the air.", "Water boils at a lower temperature at altitude."]
# both sides run SmolLM2 in fp32 on the CPU; vLLM's kernels sum in another order. Measured: see the README.
LOGPROB_TOLERANCE = 2e-3


def test_served_digit_logprobs_are_the_full_softmax_of_transformers(vllm_server, smollm2_dir, smollm2_llm):
    served = OpenAICompatibleLLM(SERVED_NAME, base_url=vllm_server.base_url, tokenizer=str(smollm2_dir),
                                 max_concurrency=4, top_logprobs=1)  # top-1 alone would miss most digits
    prompts = QwenReranker(served).prompts(QUERY, DOCS)
    remote = served.next_token_logprobs(prompts, DIGITS)
    local = smollm2_llm.next_token_logprobs(prompts, DIGITS)
    assert served._exact is True
    gaps = [abs(r[d] - lo[d]) for r, lo in zip(remote, local, strict=True) for d in DIGITS]
    assert all(r.keys() == set(DIGITS) for r in remote) and max(gaps) < LOGPROB_TOLERANCE, max(gaps)
    # a full softmax: the six digits hold less than all the mass, as the local model says
    assert all(0 < sum(math.exp(v) for v in r.values()) < 1 for r in remote)
    # through the reranker (shared prefix tokenized apart, as TransformersLLM does): the same 0-5 scores
    got = QwenReranker(served).rerank(QUERY, DOCS)
    want = {d.text: d.metadata for d in QwenReranker(smollm2_llm).rerank(QUERY, DOCS)}
    for d in got:
        assert d.metadata["rerank_score"] == pytest.approx(want[d.text]["rerank_score"], abs=1e-3)
        assert d.metadata["rerank_digit_mass"] == pytest.approx(want[d.text]["rerank_digit_mass"], rel=1e-2)


def _scores(llm: OpenAICompatibleLLM, prompts: list[str], asynchronous: bool) -> list[Any]:
    if asynchronous:
        return asyncio.run(llm.anext_token_logprobs(prompts, DIGITS))
    return llm.next_token_logprobs(prompts, DIGITS)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_server_without_logprob_token_ids_is_probed_once_then_scored_by_top_k(smollm2_dir, caplog, asynchronous):
    """An OpenAI-compatible server that ignores the field (answers the top-k as text tokens): the first request
    finds out, the rest go the top-k way at once, with a logged warning saying the scores may miss a digit."""
    tops = [{"4": -0.5, "x": -1.0}, {"4": -0.5, "x": -1.0}, {"1": -0.2}, {"2": -0.3}]
    with ScriptedServer([(200, completion_body("4", t)) for t in tops]) as server:
        llm = OpenAICompatibleLLM("m", base_url=server.base_url, tokenizer=str(smollm2_dir), max_concurrency=1)
        with caplog.at_level("WARNING", logger="reasonir_rag"):
            out = _scores(llm, ["a", "b", "c"], asynchronous)
    bodies = [r["body"] for r in server.requests]
    assert "logprob_token_ids" in bodies[0] and isinstance(bodies[0]["prompt"], list)
    assert all("logprob_token_ids" not in b for b in bodies[1:]) and len(bodies) == 4
    assert out == [{"4": -0.5}, {"1": -0.2}, {"2": -0.3}] and llm._exact is False
    assert "logprob_token_ids" in caplog.text and "may miss a digit" in caplog.text


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_server_that_rejects_logprob_token_ids_falls_back(smollm2_dir, asynchronous):
    rejected = {"error": {"message": "Unrecognized request argument supplied: logprob_token_ids"}}
    with ScriptedServer([(400, rejected), (200, completion_body("3", {"3": -0.1}))]) as server:
        llm = OpenAICompatibleLLM("m", base_url=server.base_url, tokenizer=str(smollm2_dir))
        assert _scores(llm, ["a"], asynchronous) == [{"3": -0.1}]
    assert llm._exact is False and len(server.requests) == 2

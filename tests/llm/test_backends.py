"""The two LLM backends: local transformers on the tiny Qwen2 (real Qwen2.5 tokenizer) and the OpenAI-compatible
client's retry, concurrency and secrecy behaviour against real loopback HTTP servers."""

from __future__ import annotations

import logging
import math

import pytest

from reasonir_rag.errors import LLMError
from reasonir_rag.llm import LLM, OpenAICompatibleLLM, TransformersLLM, load_llm
from tests.llm.helpers import ScriptedServer, completion_body, free_port

DIGITS = [str(d) for d in range(6)]


def test_tiny_qwen_is_an_llm_with_single_token_digits(tiny_qwen_llm):
    assert isinstance(tiny_qwen_llm, LLM)
    assert tiny_qwen_llm.candidate_ids(DIGITS) == [15, 16, 17, 18, 19, 20]
    with pytest.raises(ValueError, match="must be one token"):
        tiny_qwen_llm.candidate_ids(["Relevance"])


def test_next_token_logprobs_are_a_full_softmax(tiny_qwen_llm):
    prompts = ["Relevance score: ", "a longer prompt that is padded on the left " * 3 + "Relevance score: "]
    out = tiny_qwen_llm.next_token_logprobs(prompts, DIGITS)
    assert len(out) == 2 and all(set(o) == set(DIGITS) for o in out)
    for o in out:
        assert all(v < 0 for v in o.values())
        assert sum(math.exp(v) for v in o.values()) < 1.0  # six of 151k tokens
    # left padding in a batch does not change a row: each prompt alone gives the same numbers
    for prompt, batched in zip(prompts, out, strict=True):
        alone = tiny_qwen_llm.next_token_logprobs([prompt], DIGITS)[0]
        assert all(abs(alone[d] - batched[d]) < 1e-4 for d in DIGITS)


def test_prefix_reuse_matches_the_plain_path(tiny_qwen_llm):
    head = tiny_qwen_llm.render_chat([{"role": "user", "content": "Query: why is the sky blue?\nDocument:"}],
                                     add_generation_prompt=False)
    conts = [" Rayleigh scattering of sunlight.", " " + "a long unrelated document " * 20, "", " x"]
    reused = tiny_qwen_llm.next_token_logprobs(conts, DIGITS, shared_prefix=head)
    tiny_qwen_llm.reuse_prefix = False
    try:
        plain = tiny_qwen_llm.next_token_logprobs(conts, DIGITS, shared_prefix=head)
    finally:
        tiny_qwen_llm.reuse_prefix = True
    for a, b in zip(reused, plain, strict=True):
        assert max(abs(a[d] - b[d]) for d in DIGITS) < 1e-4


# continuations of very different lengths (1 token, empty, long, equal pairs): left padding between the cached
# prefix and each row must not change any row's numbers
_HEAD = "Instructions: rate the document.\nQuery: why is the sky blue?\nDocument:"
_CONTS = [" x", " Rayleigh scattering of sunlight.", "", " " + "a long unrelated document " * 15,
          " same length A", " same length B", " Relevance score: "]


@pytest.mark.parametrize(("batch_size", "max_tokens_per_batch"), [(16, 8192), (2, 8192), (1, 8192), (16, 40)],
                         ids=["one-batch", "pairs", "single", "token-budget-split"])
def test_batched_prefix_reuse_matches_each_prompt_alone(tiny_qwen_llm, monkeypatch, batch_size, max_tokens_per_batch):
    alone = []
    monkeypatch.setattr(tiny_qwen_llm, "reuse_prefix", False)
    for c in _CONTS:  # the plain path, one whole prompt per forward: no padding at all
        alone.append(tiny_qwen_llm.next_token_logprobs([_HEAD + c], DIGITS)[0])
    monkeypatch.setattr(tiny_qwen_llm, "reuse_prefix", True)
    monkeypatch.setattr(tiny_qwen_llm, "batch_size", batch_size)
    monkeypatch.setattr(tiny_qwen_llm, "max_tokens_per_batch", max_tokens_per_batch)
    batched = tiny_qwen_llm.next_token_logprobs(_CONTS, DIGITS, shared_prefix=_HEAD)
    for c, a, b in zip(_CONTS, alone, batched, strict=True):
        assert max(abs(a[d] - b[d]) for d in DIGITS) < 1e-4, c


def test_prefix_runs_once_and_the_documents_in_one_batched_forward(tiny_qwen_llm, monkeypatch):
    """Ten continuations cost two model calls: the shared prefix once, then all rows together over its KV cache,
    with the LM head at the last position only (real model; a forward hook only records the calls)."""
    calls: list[tuple[tuple[int, ...], int, int]] = []

    def record(module, args, kwargs, output):
        calls.append((tuple(kwargs["input_ids"].shape), kwargs.get("logits_to_keep", 0), output.logits.shape[1]))

    monkeypatch.setattr(tiny_qwen_llm, "batch_size", 16)
    handle = tiny_qwen_llm.model.register_forward_hook(record, with_kwargs=True)
    try:
        out = tiny_qwen_llm.next_token_logprobs([f" document {i} " * (i + 1) for i in range(10)], DIGITS,
                                               shared_prefix=_HEAD)
    finally:
        handle.remove()
    assert len(out) == 10
    prefix_len = len(tiny_qwen_llm._encode(_HEAD))
    assert [shape for shape, _, _ in calls] == [(1, prefix_len), (10, calls[1][0][1])]
    assert all(keep == 1 and kept == 1 for _, keep, kept in calls)


class SmallMemoryLLM(TransformersLLM):
    """The real tiny Qwen backend whose forward raises an out-of-memory error for batches above two rows
    (stands in for a GPU OOM, which cannot happen here)."""

    def __init__(self, inner: TransformersLLM):
        self.__dict__.update(inner.__dict__)

    def _score_plain(self, rows):
        if len(rows) > 2:
            raise RuntimeError("CUDA out of memory (injected)")
        return super()._score_plain(rows)


def test_a_failing_batch_is_split_and_nothing_is_lost(tiny_qwen_llm, caplog):
    prompts = [f"document number {i} " * (i + 1) for i in range(5)]
    expected = tiny_qwen_llm.next_token_logprobs(prompts, DIGITS)
    with caplog.at_level(logging.WARNING):
        got = SmallMemoryLLM(tiny_qwen_llm).next_token_logprobs(prompts, DIGITS)
    assert "retrying it in halves" in caplog.text
    for a, b in zip(expected, got, strict=True):
        assert max(abs(a[d] - b[d]) for d in DIGITS) < 1e-4


def test_generate_batches_chat_and_raw_prompts(tiny_qwen_llm):
    prompts = [[{"role": "user", "content": "hi"}], "Once upon a time", [{"role": "user", "content": "hello " * 30}]]
    out = tiny_qwen_llm.generate(prompts, max_tokens=4, temperature=0.0)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    again = tiny_qwen_llm.generate(prompts, max_tokens=4, temperature=0.0)
    assert again == out  # greedy is repeatable
    with pytest.raises(ValueError, match="prompt #1"):
        tiny_qwen_llm.generate(["ok", [{"role": "robot", "content": "x"}]], max_tokens=1)


def test_render_chat_continues_an_assistant_prefix(tiny_qwen_llm):
    messages = [{"role": "user", "content": "Rate it."}, {"role": "assistant", "content": "Relevance score: "}]
    text = tiny_qwen_llm.render_chat(messages, continue_final_message=True)
    assert text.endswith("<|im_start|>assistant\nRelevance score: ")


def test_truncate_keeps_a_token_prefix_of_the_original(tiny_qwen_llm):
    text = "Hello world, this is a test of truncation."
    cut = tiny_qwen_llm.truncate(text, 3)
    assert text.startswith(cut) and tiny_qwen_llm.count_tokens(cut) == 3
    assert tiny_qwen_llm.truncate(text, 1000) == text and tiny_qwen_llm.truncate(text, 0) == ""


def test_load_llm_specs(tiny_qwen_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert isinstance(load_llm(f"hf:{tiny_qwen_dir}", device="cpu"), TransformersLLM)
    remote = load_llm("openai:some-model", base_url="http://127.0.0.1:9/v1")
    assert isinstance(remote, OpenAICompatibleLLM) and remote.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert isinstance(load_llm("served-model"), OpenAICompatibleLLM)
    with pytest.raises(ValueError, match="names no model"):
        load_llm("openai:")


# ---------------------------------------------------------------- OpenAI-compatible client
def _client(base_url: str, **kw) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM("m", base_url=base_url, api_key="sk-test-SECRET-123", backoff=0.01, **kw)


def test_retries_429_and_5xx_then_succeeds():
    script = [(429, {"error": "slow down"}), (503, {"error": "busy"}), (200, completion_body("hello"))]
    with ScriptedServer(script) as server:
        out = _client(server.base_url, max_retries=3).generate(["say hello"], max_tokens=4)
    assert out == ["hello"]
    assert len(server.requests) == 3
    assert server.requests[0]["auth"] == "Bearer sk-test-SECRET-123"  # the key reaches the server only


def test_clear_error_after_the_last_retry_without_leaking_the_key(caplog):
    with ScriptedServer([(500, {"error": "boom"})] * 3) as server, caplog.at_level(logging.DEBUG):
        llm = _client(server.base_url, max_retries=2)
        with pytest.raises(LLMError) as err:
            llm.generate(["x"], max_tokens=1)
    msg = str(err.value)
    assert server.base_url in msg and "after 3 attempts" in msg and "InternalServerError" in msg
    assert len(server.requests) == 3
    assert "SECRET" not in msg and "SECRET" not in repr(llm) and "SECRET" not in caplog.text


def test_client_errors_are_not_retried():
    script = [(400, {"error": "prompt too long"}), (200, completion_body("late"))]
    with ScriptedServer(script) as server, pytest.raises(LLMError, match="rejected with HTTP 400"):
        _client(server.base_url).generate(["x"], max_tokens=1)
    assert len(server.requests) == 1


def test_server_down_gives_a_clear_error_after_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    llm = _client(url, max_retries=2)  # a refused connect is retried connect_retries=1 time, not max_retries
    with pytest.raises(LLMError, match=r"failed after 2 attempts: APIConnectionError") as err:
        llm.generate(["x"], max_tokens=1)
    assert url in str(err.value)
    out = llm.generate(["x", "y"], max_tokens=1, return_exceptions=True)
    assert all(isinstance(o, LLMError) for o in out)


def test_top_logprobs_fold_onto_candidates_and_keep_order():
    tops = [{"4": -0.5, " 4": -1.0, "x": -2.0}, {"1": -0.1}, {"\n": -0.01}]
    with ScriptedServer([(200, completion_body("4", t)) for t in tops]) as server:
        llm = _client(server.base_url, max_concurrency=1)
        out = llm.next_token_logprobs(["a", "b", "c"], DIGITS, shared_prefix="P:")
    assert out[0].keys() == {"4"} and abs(out[0]["4"] - math.log(math.exp(-0.5) + math.exp(-1.0))) < 1e-9
    assert out[1] == {"1": -0.1} and out[2] == {}
    assert [r["body"]["prompt"] for r in server.requests] == ["P:a", "P:b", "P:c"]
    assert all(r["body"]["max_tokens"] == 1 and r["body"]["logprobs"] == 20 for r in server.requests)


def test_importing_the_llm_stages_stays_light():
    import subprocess
    import sys

    code = ("import sys, reasonir_rag.llm, reasonir_rag.pipeline.reranker, reasonir_rag.pipeline.rewriter, "
            "reasonir_rag.cli.llm; "
            "print([m for m in ('torch', 'transformers', 'openai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

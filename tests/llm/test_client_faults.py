"""The OpenAI-compatible client against a loopback fault server: openai's own retries (each ``Retry-After`` form,
5xx, ``x-should-retry``), the connect timeout apart from the read timeout, bounded concurrency on AsyncOpenAI."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from reasonir_rag.errors import LLMError
from reasonir_rag.llm import OpenAICompatibleLLM
from tests.llm.helpers import completion_body
from tests.servers import FaultServer, Reply, free_port, unanswered_connect_port

OK = Reply(200, completion_body("ok"))


def _llm(base_url: str, **kw) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM("m", base_url=base_url, api_key="sk-test-FAULTS-42", backoff=0.001, **kw)


@pytest.mark.parametrize("form", ["seconds", "milliseconds", "http-date"])
def test_429_waits_as_long_as_each_retry_after_form_says(form):
    """The wait between the 429 and the retry is at least what the server asked (the exponential backoff alone
    would be ~1 ms here), so each form is understood."""
    wait = {"seconds": 1.0, "milliseconds": 0.4, "http-date": 1.0}[form]
    header = {"seconds": {"retry-after": "1"}, "milliseconds": {"retry-after-ms": "400"},
              "http-date": {"retry-after": email.utils.formatdate(time.time() + 2, usegmt=True)}}[form]
    with FaultServer([Reply(429, {"error": "slow down"}, header), OK]) as server:
        assert _llm(server.base_url, max_retries=2).generate(["x"], max_tokens=1) == ["ok"]
    first, second = server.requests
    assert second["at"] - first["at"] >= wait * 0.9  # http-date: whole seconds, so 1-2 s from now
    assert [r["headers"]["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]


def test_5xx_is_retried_and_the_error_counts_the_attempts():
    with FaultServer([Reply(503, {"error": "busy"}), Reply(502, {"error": "bad gateway"}), OK]) as server:
        assert _llm(server.base_url, max_retries=3).generate(["x"], max_tokens=1) == ["ok"]
    assert len(server.requests) == 3
    with FaultServer([Reply(500, {"error": "boom"})]) as server, pytest.raises(LLMError) as err:
        _llm(server.base_url, max_retries=2).generate(["x"], max_tokens=1)
    assert len(server.requests) == 3 and err.value.transient
    assert "after 3 attempts: InternalServerError (HTTP 500)" in str(err.value) and server.base_url in str(err.value)
    assert "FAULTS" not in str(err.value)


def test_x_should_retry_false_is_obeyed():
    draining = Reply(503, {"error": "draining"}, {"x-should-retry": "false"})
    with FaultServer([draining, OK]) as server, pytest.raises(LLMError, match=r"after 1 attempt: .*HTTP 503"):
        _llm(server.base_url, max_retries=3).generate(["x"], max_tokens=1)
    assert len(server.requests) == 1


def test_a_hang_on_connect_ends_at_the_connect_timeout_not_the_read_timeout():
    """Nothing accepts the connection; the read timeout is 10 minutes, the connect timeout half a second: the
    error comes from the connect phase (httpx's ConnectTimeout), after every attempt."""
    with unanswered_connect_port() as port:
        llm = _llm(f"http://127.0.0.1:{port}/v1", max_retries=1, timeout=600, connect_timeout=0.5)
        with pytest.raises(LLMError) as err:
            llm.generate(["x"], max_tokens=1)
    assert "after 2 attempts: APITimeoutError (ConnectTimeout)" in str(err.value) and err.value.transient


def test_a_refused_or_unanswered_connect_is_retried_once_while_a_busy_server_gets_every_retry():
    """``max_retries=4``: a 503 is sent five times, but a connection that is refused, or never accepted, is tried
    twice (``connect_retries=1``), so a server that is not there fails in seconds, sync and async alike."""
    with FaultServer([Reply(503, {"error": "busy"})]) as server, pytest.raises(LLMError, match="after 5 attempts"):
        _llm(server.base_url, max_retries=4).generate(["x"], max_tokens=1)
    assert len(server.requests) == 5
    llm = _llm(f"http://127.0.0.1:{free_port()}/v1", max_retries=4)  # nothing listens there: refused
    with pytest.raises(LLMError, match=r"after 2 attempts: APIConnectionError \(ConnectError\)"):
        llm.generate(["x"], max_tokens=1)
    out = asyncio.run(llm.agenerate(["x"], max_tokens=1, return_exceptions=True))
    assert isinstance(out[0], LLMError) and "after 2 attempts" in str(out[0]) and out[0].transient
    with unanswered_connect_port() as port:
        hung = _llm(f"http://127.0.0.1:{port}/v1", max_retries=4, connect_timeout=0.3)
        with pytest.raises(LLMError, match=r"after 2 attempts: APITimeoutError \(ConnectTimeout\)"):
            hung.generate(["x"], max_tokens=1)
    strict = _llm(f"http://127.0.0.1:{port}/v1", max_retries=4, connect_retries=0)
    with pytest.raises(LLMError, match="after 1 attempt:"):
        strict.generate(["x"], max_tokens=1)


def test_a_hang_on_read_ends_at_the_read_timeout():
    with FaultServer([Reply(hang=True)]) as server:
        with pytest.raises(LLMError) as err:
            _llm(server.base_url, max_retries=1, timeout=0.5).generate(["x"], max_tokens=1)
        assert len(server.requests) == 2
    assert "after 2 attempts: APITimeoutError (ReadTimeout)" in str(err.value) and err.value.transient


def test_agenerate_keeps_at_most_max_concurrency_requests_in_flight():
    with FaultServer([Reply(200, completion_body("ok"), delay=0.2)]) as server:
        llm = _llm(server.base_url, max_concurrency=3)
        out = asyncio.run(llm.agenerate([f"q{i}" for i in range(9)], max_tokens=1))
    assert out == ["ok"] * 9 and len(server.requests) == 9
    assert 2 <= server.most_in_flight <= 3
    assert {r["body"]["prompt"] for r in server.requests} == {f"q{i}" for i in range(9)}


def test_concurrent_async_calls_share_one_bound():
    """Two batches awaited together (a retriever reranking several questions at once) still keep at most
    ``max_concurrency`` requests in flight: the bound is the client's, not each call's."""
    with FaultServer([Reply(200, completion_body("ok"), delay=0.2)]) as server:
        llm = _llm(server.base_url, max_concurrency=2)

        async def both() -> list[list[str]]:
            return list(await asyncio.gather(llm.agenerate(["a"] * 4, max_tokens=1),
                                             llm.agenerate(["b"] * 4, max_tokens=1)))

        out = asyncio.run(both())
    assert out == [["ok"] * 4] * 2 and len(server.requests) == 8 and server.most_in_flight == 2


def test_agenerate_errors_are_llm_errors_per_prompt():
    with FaultServer([Reply(400, {"error": "too long"}), OK]) as server:
        out = asyncio.run(_llm(server.base_url, max_concurrency=1).agenerate(["a", "b"], max_tokens=1,
                                                                             return_exceptions=True))
    assert isinstance(out[0], LLMError) and "rejected with HTTP 400" in str(out[0]) and out[1] == "ok"

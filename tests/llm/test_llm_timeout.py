"""The read timeout of a served LLM: ``load_llm(timeout=...)`` and ``--llm-timeout`` on every command that takes
an LLM; the 5 s connect timeout stays separate."""

from __future__ import annotations

import pytest

from reasonir_rag.cli.main import build_parser, main
from reasonir_rag.errors import InvalidInputError, LLMError
from reasonir_rag.llm import load_llm
from tests.llm.helpers import completion_body
from tests.servers import FaultServer, Reply

URL = "http://127.0.0.1:9/v1"


def test_load_llm_passes_the_read_timeout_and_keeps_the_connect_timeout():
    default = load_llm("openai:m", base_url=URL)._http.timeout
    assert default.read == 120.0 and default.connect == 5.0
    long = load_llm("openai:m", base_url=URL, timeout=1800)._http.timeout
    assert long.read == 1800.0 and long.connect == 5.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "60", True])
def test_load_llm_refuses_a_timeout_that_is_not_a_positive_number(bad):
    with pytest.raises(InvalidInputError, match="must be a positive number of seconds"):
        load_llm("openai:m", base_url=URL, timeout=bad)


def test_the_read_timeout_is_what_a_slow_answer_meets():
    with FaultServer([Reply(200, completion_body("late"), delay=1.5)]) as server:
        quick = load_llm("openai:m", base_url=server.base_url, api_key="k", timeout=0.3)
        quick._http.client.max_retries = 0  # one attempt: the timeout, not the retries, is under test
        with pytest.raises(LLMError):
            quick.generate(["hello"], max_tokens=2)
        patient = load_llm("openai:m", base_url=server.base_url, api_key="k", timeout=10)
        assert patient.generate(["hello"], max_tokens=2) == ["late"]


COMMANDS = [  # every command that takes an LLM, with its other required arguments
    ["rewrite", "q", "--llm", "openai:m"],
    ["rerank", "--query", "q", "--llm", "openai:m"],
    ["synthesize", "corpus", "--llm", "openai:m", "--out", "o", "--task", "biology"],
    ["eval", "retrieval", "--bright", "d", "--task", "biology", "--llm", "openai:m"],
    ["eval", "mmlu", "--collection", "c", "--reader", "openai:m"],
    ["eval", "gpqa", "--collection", "c", "--reader", "openai:m"],
    ["demo", "--llm", "m", "--llm-url", URL],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_every_llm_command_takes_llm_timeout(argv):
    assert build_parser().parse_args([*argv, "--llm-timeout", "900"]).llm_timeout == 900.0
    assert build_parser().parse_args(argv).llm_timeout is None


@pytest.mark.parametrize("bad", ["0", "-5", "soon", "nan", "inf"])
def test_a_bad_llm_timeout_is_one_clear_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "retrieval", "--bright", "d", "--task", "biology", "--llm", "openai:m", "--llm-timeout", bad])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument --llm-timeout: must be a positive number of seconds, got '{bad}'" in err


def test_the_demo_llm_gets_the_timeout():
    from reasonir_rag.demo.config import resolve_config
    from reasonir_rag.demo.run import load_demo_llm

    config = resolve_config("offline", llm="m", llm_url=URL, llm_timeout=600.0, env={})
    assert load_demo_llm(config)._http.timeout.read == 600.0

"""Safe defaults: no remote code and no pickled weights unless asked, secrets kept out of logs, errors and
reports, the Chroma auth token sent on every request, and every server on loopback only.

Already covered elsewhere (not repeated here): the encoder's remote-code switch (tests/encoder/test_loading.py:
``test_remote_code_is_not_executed_by_default`` and the opt-in twin), the OpenAI client's key in retries and
errors (tests/llm/test_backends.py), an unreachable Chroma server's error without the token
(tests/store/test_server.py), the vLLM server's sockets (tests/reliability/test_faults.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from reasonir_rag.errors import LLMError
from reasonir_rag.eval.journal import Journal
from reasonir_rag.eval.mmlu import load_mmlu
from reasonir_rag.eval.runner import EvalSettings, RAGEvaluator
from reasonir_rag.index.store import ChromaStore
from tests.llm.helpers import ScriptedServer
from tests.reliability.conftest import LOOPBACK, REPO, RecordingProxy, listening_addresses

SECRETS = {"OPENAI_API_KEY": "sk-test-OPENAI-7f3a9c", "HF_TOKEN": "hf_test_HFTOKEN_51d2",
           "CHROMA_AUTH_TOKEN": "chroma-test-TOKEN-88e1"}
TEXTS = ["Photosynthesis turns light into chemical energy.", "A buffer resists changes in pH."]

MARKING_MODELING = '''
import os
from transformers import Qwen2ForCausalLM

open(os.environ["REASONIR_REMOTE_CODE_MARK"], "w").write("executed")


class MarkingQwen(Qwen2ForCausalLM):
    pass
'''


@pytest.fixture
def secrets_in_env(monkeypatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


@pytest.fixture
def debug_logs(caplog):
    """Every logger that could see a request at DEBUG (ours, the OpenAI client, httpx, Chroma)."""
    for name in ("", "reasonir_rag", "openai", "httpx", "httpcore", "chromadb"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


# ------------------------------------------------------------------------------------------ remote code
def test_llm_backend_runs_no_remote_code_by_default(tmp_path, tiny_qwen_dir, monkeypatch):
    """A checkpoint whose config maps AutoModelForCausalLM to its own modelling file (which would leave a mark):
    TransformersLLM (reader, rewriter and reranker backend) loads the built-in Qwen2 class and never runs it."""
    from reasonir_rag.llm import TransformersLLM

    folder = tmp_path / "qwen-with-remote-code"
    shutil.copytree(tiny_qwen_dir, folder)
    (folder / "modeling_marking.py").write_text(MARKING_MODELING)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_marking.MarkingQwen"}
    (folder / "config.json").write_text(json.dumps(config))
    mark = tmp_path / "remote-code-ran"
    monkeypatch.setenv("REASONIR_REMOTE_CODE_MARK", str(mark))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    llm = TransformersLLM(str(folder), device="cpu")
    assert not mark.exists(), "the checkpoint's own code ran without trust_remote_code=True"
    assert type(llm.model).__name__ == "Qwen2ForCausalLM"


# ------------------------------------------------------------------------------------------ safetensors only
def _pickle_only(source: Path, target: Path) -> Path:
    """The same checkpoint with its weights as pytorch_model.bin (a pickle) and no safetensors file."""
    shutil.copytree(source, target)
    torch.save(load_file(str(target / "model.safetensors")), target / "pytorch_model.bin")
    (target / "model.safetensors").unlink()
    return target


def test_encoder_loads_safetensors_only_unless_opted_in(tmp_path, tiny_reasonir_dir, tiny_encoder):
    folder = _pickle_only(tiny_reasonir_dir, tmp_path / "pickled")
    from reasonir_rag.encoding.encoder import ReasonIREncoder

    with pytest.raises(OSError, match=r"model\.safetensors.*use_safetensors=False") as err:
        ReasonIREncoder.from_pretrained(str(folder))
    assert str(folder) in str(err.value)
    opted_in = ReasonIREncoder.from_pretrained(str(folder), use_safetensors=False)
    np.testing.assert_allclose(opted_in.encode_documents(TEXTS), tiny_encoder.encode_documents(TEXTS), atol=1e-6)


def test_llm_backend_loads_safetensors_only_unless_opted_in(tmp_path, tiny_qwen_dir):
    from reasonir_rag.llm import TransformersLLM

    folder = _pickle_only(tiny_qwen_dir, tmp_path / "pickled-qwen")
    with pytest.raises(OSError, match=r"model\.safetensors"):
        TransformersLLM(str(folder), device="cpu")
    assert TransformersLLM(str(folder), device="cpu", use_safetensors=False).model is not None


# ------------------------------------------------------------------------------------------ secrets
def _chat_body(text: str) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.mark.parametrize("status", [401, 500])
def test_api_key_stays_out_of_logs_and_errors_of_a_failed_eval(tmp_path, repo_data, secrets_in_env, debug_logs,
                                                                status):
    """An eval whose server refuses (401) or fails (500, retried): the key from OPENAI_API_KEY reaches the server
    and nothing else: not the logs at DEBUG, not the error, not its traceback with every chained cause."""
    from reasonir_rag.llm import OpenAICompatibleLLM

    questions = load_mmlu(repo_data / "mmlu", subjects=["astronomy"], sample=2, seed=0)
    body = {"error": {"message": "invalid api key" if status == 401 else "engine crashed", "code": status}}
    with ScriptedServer([(status, body)] * 8) as server:
        reader = OpenAICompatibleLLM("m", base_url=server.base_url, max_retries=1, backoff=0.01)
        evaluator = RAGEvaluator(reader=reader, journal=Journal(tmp_path / "journal.sqlite"),
                                 settings=EvalSettings(conditions=("closed-book",), show_progress=False))
        with pytest.raises(LLMError) as err:
            evaluator.run(questions)
    assert server.requests and all(r["auth"] == f"Bearer {SECRETS['OPENAI_API_KEY']}" for r in server.requests)
    assert f"HTTP {status}" in str(err.value) or "InternalServerError" in str(err.value)
    full = "".join(traceback.format_exception(err.value))
    assert not _leaks(full) and not _leaks(repr(reader)) and not _leaks(debug_logs.text)
    assert not _leaks((tmp_path / "journal.sqlite").read_bytes().decode("latin-1"))


def test_a_server_that_echoes_the_key_is_redacted_in_our_error(secrets_in_env, debug_logs):
    """Some servers quote the key they were sent in their error body: our message masks it."""
    from reasonir_rag.llm import OpenAICompatibleLLM

    echo = {"error": {"message": f"Incorrect API key provided: {SECRETS['OPENAI_API_KEY']}"}}
    with ScriptedServer([(401, echo)]) as server, pytest.raises(LLMError) as err:
        OpenAICompatibleLLM("m", base_url=server.base_url).generate(["hi"], max_tokens=1)
    assert "HTTP 401" in str(err.value) and "***" in str(err.value) and not _leaks(str(err.value))
    assert not _leaks(debug_logs.text)


def test_api_keys_stay_out_of_a_written_report(tmp_path, repo_data, secrets_in_env, debug_logs):
    """A successful eval with every secret set: the report files, the journal and the logs hold none of them."""
    from reasonir_rag.llm import OpenAICompatibleLLM

    questions = load_mmlu(repo_data / "mmlu", subjects=["astronomy"], sample=2, seed=0)
    with ScriptedServer([(200, _chat_body("The answer is (B)."))] * 2) as server:
        reader = OpenAICompatibleLLM("m", base_url=server.base_url)
        evaluator = RAGEvaluator(reader=reader, journal=Journal(tmp_path / "out" / "journal.sqlite"),
                                 settings=EvalSettings(conditions=("closed-book",), show_progress=False))
        report = evaluator.report(questions, "mmlu", out_dir=tmp_path / "out")
    assert report["files"] and len(server.requests) == 2
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert not _leaks(path.read_bytes().decode("latin-1")), path
    assert not _leaks(json.dumps(report, default=str)) and not _leaks(debug_logs.text)


# ------------------------------------------------------------------------------------------ Chroma auth token
def test_chroma_client_sends_the_auth_token_on_every_request(chroma_server_factory, tiny_encoder, secrets_in_env,
                                                             debug_logs):
    """chromadb 1.5's server (``chroma run``) has no server-side token check, so a loopback proxy in front of a
    real server records what the client sends, as an authenticating reverse proxy or hosted Chroma would see
    it: ``Authorization: Bearer $CHROMA_AUTH_TOKEN`` on every request; an explicit ``auth_token`` wins."""
    server = chroma_server_factory().start()
    proxy = RecordingProxy(upstream=server.port)
    try:
        store = ChromaStore("auth", encoder=tiny_encoder, host="127.0.0.1", port=proxy.port)
        store.add(TEXTS)
        assert [h.text for h in store.search("buffer pH", k=1)] == [TEXTS[1]]
        from_env = proxy.client_calls
        ChromaStore("auth", encoder=tiny_encoder, host="127.0.0.1", port=proxy.port, auth_token="explicit-token")
        explicit = proxy.client_calls[len(from_env):]
    finally:
        proxy.close()
    assert len(from_env) >= 4 and {e.headers.get("authorization") for e in from_env} == {
        f"Bearer {SECRETS['CHROMA_AUTH_TOKEN']}"}
    assert explicit and {e.headers.get("authorization") for e in explicit} == {"Bearer explicit-token"}
    assert not _leaks(repr(store)) and not _leaks(debug_logs.text)


# ------------------------------------------------------------------------------------------ loopback only
def test_servers_started_by_the_tests_listen_on_loopback_only(chroma_server_factory, recording_proxy):
    """The listening sockets of a real ``chroma run`` (read from /proc/net/tcp and tcp6 for its PID), of the
    loopback proxy and of the scripted OpenAI server are all on 127.0.0.1 or ::1 (vLLM: see test_faults)."""
    server = chroma_server_factory().start()
    sockets = listening_addresses([server.pid, os.getpid()])
    with ScriptedServer([]) as scripted:
        port = int(scripted.base_url.rsplit(":", 1)[1].split("/")[0])
        sockets_with_scripted = listening_addresses([os.getpid()])
    ports = {p for _, _, p in sockets + sockets_with_scripted}
    assert {server.port, recording_proxy.port, port} <= ports, sockets
    assert all(addr in LOOPBACK for _, addr, _ in sockets + sockets_with_scripted), sockets


def test_no_server_command_in_the_repository_binds_beyond_loopback():
    """Every place that starts a server (test fixtures, scripts, benchmarks, the package) passes
    ``--host 127.0.0.1`` or binds 127.0.0.1, and nothing binds 0.0.0.0 or all interfaces."""
    starters = re.compile(r"""["'](run|vllm\.entrypoints\.openai\.api_server|serve)["']""")
    checked = 0
    for folder in ("reasonir_rag", "tests", "scripts", "benchmarks", "cookbook", "integrations"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix not in (".py", ".sh") or ".egg-info" in str(path) or path == Path(__file__):
                continue
            text = path.read_text(errors="replace")
            assert "0.0.0.0" not in text, f"{path} binds all interfaces"
            assert not re.search(r"""bind\(\(\s*["']["']""", text), f"{path} binds all interfaces"
            if "Popen" in text and starters.search(text):
                checked += 1
                assert '"--host", "127.0.0.1"' in text, f"{path} starts a server without --host 127.0.0.1"
    assert checked >= 2, "the server fixtures were not found"  # tests/servers.py, tests/store/conftest.py, ours


# ------------------------------------------------------------------------------------------ echoed secrets
# other values than SECRETS: each is read from another place (an argument, a header, a URL), each must be masked
ECHOED = {"chroma token": "chroma-echo-TOKEN-3b7f", "custom header": "gw-echo-HEADER-9c2d",
          "basic-auth password": "pw-echo-BASIC-41aa", "openai key": "sk-echo-OPENAI-77e0"}


def _echo_leaks(text: str) -> list[str]:
    import base64

    found = [name for name, value in ECHOED.items() if value in text]
    basic = base64.b64encode(f"ops:{ECHOED['basic-auth password']}".encode()).decode()
    return found + (["basic-auth credential"] if basic in text else [])


def _everything(exc: BaseException) -> str:
    """What a user can see of an error: its message, its traceback with every chained cause and context."""
    return str(exc) + "".join(traceback.format_exception(exc))


def test_a_chroma_token_and_a_custom_header_echoed_in_an_error_body_are_masked(debug_logs):
    from reasonir_rag.index.connection import ChromaConnection
    from tests.servers import FaultServer, Reply

    with FaultServer([Reply(401, echo=True)]) as server, pytest.raises(ConnectionError) as err:
        ChromaConnection(host="127.0.0.1", port=server.port, auth_token=ECHOED["chroma token"],
                         headers={"X-Gateway-Key": ECHOED["custom header"]}).open()
    probe, sent = (r["headers"] for r in server.requests[:2])  # first our reachability probe: no credentials
    assert "authorization" not in probe and "x-gateway-key" not in probe
    assert sent["authorization"] == f"Bearer {ECHOED['chroma token']}" and sent["x-gateway-key"] == ECHOED[
        "custom header"]  # they did reach the server, which quoted them back
    assert "rejected request with headers" in str(err.value) and "***" in str(err.value)
    assert not _echo_leaks(_everything(err.value)) and not _echo_leaks(debug_logs.text)


def test_a_password_in_the_server_url_and_the_key_echoed_back_are_masked(debug_logs):
    from reasonir_rag.llm import OpenAICompatibleLLM
    from tests.servers import FaultServer, Reply

    with FaultServer([Reply(401, echo=True)]) as server:
        url = server.base_url.replace("http://", f"http://ops:{ECHOED['basic-auth password']}@")
        llm = OpenAICompatibleLLM("m", base_url=url, api_key=ECHOED["openai key"])
        with pytest.raises(LLMError) as err:
            llm.generate(["hi"], max_tokens=1)
    assert "HTTP 401" in str(err.value) and "ops:***@127.0.0.1" in str(err.value)
    # httpx sends the URL's user and password as basic auth: the server had the credential to echo
    assert server.requests[0]["headers"]["authorization"].startswith("Basic ")
    assert _echo_leaks(json.dumps(server.requests[0]["headers"])) == ["basic-auth credential"]
    assert not _echo_leaks(_everything(err.value)) and not _echo_leaks(repr(llm)) and not _echo_leaks(debug_logs.text)


def test_the_cli_error_line_and_its_verbose_traceback_mask_echoed_secrets(tmp_path):
    """``search`` on a Chroma server (a proxy) that echoes the request's headers: one line on stderr, exit 2,
    no token; with ``-v`` the traceback of every chained cause is masked too. ``rewrite`` with the key."""
    import subprocess
    import sys

    from tests.servers import FaultServer, Reply

    env = {**os.environ, "PYTHONPATH": str(REPO), "CHROMA_AUTH_TOKEN": ECHOED["chroma token"],
           "OPENAI_API_KEY": ECHOED["openai key"], "HF_HUB_OFFLINE": "1"}
    with FaultServer([Reply(401, echo=True)]) as server:
        search = [sys.executable, "-m", "reasonir_rag", "search", "q", "--collection", "kb0", "--host", "127.0.0.1",
                  "--port", str(server.port), "--encoder", "minilm", "--device", "cpu"]
        quiet = subprocess.run(search, env=env, capture_output=True, text=True, timeout=300)
        loud = subprocess.run([*search, "-v"], env=env, capture_output=True, text=True, timeout=300)
        rewrite = subprocess.run([sys.executable, "-m", "reasonir_rag", "rewrite", "q", "--llm", "openai:m",
                                  "--base-url", server.base_url], env=env, capture_output=True, text=True,
                                 timeout=300)
    errors = [line for line in quiet.stderr.splitlines() if not line.startswith("WARNING ")]  # e.g. a deprecation
    assert quiet.returncode == 2 and len(errors) == 1 and errors[0].startswith("reasonir-rag search: error: ")
    assert "Bearer ***" in errors[0], quiet.stderr
    assert loud.returncode == 2 and "Traceback" in loud.stderr and "Bearer ***" in loud.stderr
    assert rewrite.returncode == 2 and rewrite.stderr.count("\n") == 1 and "HTTP 401" in rewrite.stderr
    for run in (quiet, loud, rewrite):
        assert not _echo_leaks(run.stderr + run.stdout), run.stderr


def test_the_secrets_registry_masks_every_form_in_messages_chains_and_log_records():
    import base64
    import urllib.parse

    from reasonir_rag._common import secrets

    token = "reg-TOKEN/with+chars-0f9e"
    secrets.register(token, "abc")  # "abc" is too short to be a secret worth masking everywhere
    secrets.register_basic_auth("ops", "reg-PASSWORD-1c2d")
    secrets.register_headers({"X-Api-Key": "reg-HEADER-5a6b", "Authorization": "Bearer reg-BEARER-7c8d"})
    basic = base64.b64encode(b"ops:reg-PASSWORD-1c2d").decode()
    text = (f"t={token} q={urllib.parse.quote(token, safe='')} p=reg-PASSWORD-1c2d b={basic} "
            "h=reg-HEADER-5a6b a=reg-BEARER-7c8d abc")
    assert secrets.redact(text) == "t=*** q=*** p=*** b=*** h=*** a=*** abc"
    try:
        try:
            raise KeyError(f"server said {token}")
        except KeyError as inner:
            raise RuntimeError("wrapped: reg-HEADER-5a6b") from inner
    except RuntimeError as outer:
        caught = outer
    secrets.scrub(caught)
    shown = "".join(traceback.format_exception(caught))
    assert "server said ***" in shown and "wrapped: ***" in shown and token not in shown
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (token,), (type(caught), caught, None))
    assert secrets.RedactingFilter().filter(record) and record.getMessage() == "sent ***" and record.args is None

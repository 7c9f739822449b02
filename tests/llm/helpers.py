"""Test helpers: free loopback ports and a scripted HTTP server for the OpenAI-compatible backend's failure paths."""

from __future__ import annotations

import http.server
import json
import threading

from tests.servers import free_port  # noqa: F401  (re-exported for the tests here)

SERVED_NAME = "smollm2"  # the name the vLLM fixture serves SmolLM2 under


class ScriptedServer:
    """A real HTTP server on loopback that answers from a script of (status, body) pairs, for the retry paths
    (429 / 503 / 400) that a healthy vLLM never produces on demand. Records every request."""

    def __init__(self, script: list[tuple[int, dict]]):
        self.script = list(script)
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.requests.append({"path": self.path, "body": json.loads(body or b"{}"),
                                       "auth": self.headers.get("authorization")})
                status, payload = outer.script.pop(0) if outer.script else (500, {"error": "script exhausted"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # polled every 50 ms, not socketserver's 0.5 s: shutdown() waits for the poll, in every test that stops one
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion_body(text: str, top: dict[str, float] | None = None) -> dict:
    """A /v1/completions response as vLLM sends it."""
    logprobs = None
    if top is not None:
        logprobs = {"text_offset": [0], "token_logprobs": [max(top.values())], "tokens": [text],
                    "top_logprobs": [top]}
    return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": logprobs}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

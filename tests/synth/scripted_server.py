"""A counting OpenAI-compatible server on 127.0.0.1 whose replies come from :class:`ScriptedLLM` (the stand-in for a
GPU-sized LLM): it records every request it answered (a hash of its body) and can hold requests after ``hold_after``
answers, so a test kills its client at a known point without timing anything."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.synth.conftest import ScriptedLLM


class CountingServer:
    def __init__(self, hold_after: int | None = None):
        self.llm = ScriptedLLM()
        self.answered: list[str] = []  # body hashes, in order
        self.hold_after = hold_after
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                with server._lock:
                    hold = server.hold_after is not None and len(server.answered) >= server.hold_after
                if hold:
                    server.release.wait()
                    return  # the client was killed meanwhile: nothing is answered
                content = server.llm.reply(request["messages"], float(request.get("temperature") or 0.0))
                payload = json.dumps({"id": "x", "object": "chat.completion", "created": int(time.time()),
                                      "model": request["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                                      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                data = payload.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                with server._lock:
                    server.answered.append(hashlib.sha256(body).hexdigest())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

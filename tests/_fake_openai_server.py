"""A loopback HTTP server speaking enough of the OpenAI chat-completions protocol to test a real client.

Script its behaviour per request: ``server.script = [429, 500, "slow"]`` answers the first three requests
with those (then normally), ``server.default`` is the behaviour after the script ("ok", a status code or
"slow"). ``reply`` maps the user message to the answer text. It records every request body and the
largest number of requests it served at the same time.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    def __init__(self, reply=None, delay: float = 0.0, slow_delay: float = 2.0):
        self.reply = reply or (lambda prompt: f"```python\ndef echo():\n    return {prompt[:20]!r}\n```")
        self.delay = delay  # every reply waits this long (to overlap requests)
        self.slow_delay = slow_delay  # a "slow" reply waits this long (to trigger client timeouts)
        self.script: list = []
        self.default: object = "ok"
        self.requests: list[dict] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_behaviour(self):
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.active += 1
                    fake.max_active = max(fake.max_active, fake.active)
                try:
                    self._answer(body)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass
                finally:
                    with fake._lock:
                        fake.active -= 1

            def _answer(self, body: dict) -> None:
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                behaviour = fake._next_behaviour()
                time.sleep(fake.slow_delay if behaviour == "slow" else fake.delay)
                if isinstance(behaviour, int):
                    self._send(behaviour, {"error": {"message": f"scripted {behaviour}", "type": "server_error"}})
                    return
                prompt = body["messages"][-1]["content"]
                text = fake.reply(prompt)
                stop = [s for s in body.get("stop") or [] if s in text]
                if stop:
                    text = text[: min(text.find(s) for s in stop)]
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(fake.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": len(text.split()), "total_tokens": 9},
                    },
                )

        return Handler

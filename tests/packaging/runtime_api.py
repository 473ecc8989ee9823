"""A local stand-in for the Lambda Runtime API, for AWS's runtime interface client.

``awslambdaric`` (what Lambda's Python base images run) polls
``GET /2018-06-01/runtime/invocation/next`` for an event and posts the handler's result to
``.../invocation/{id}/response`` or ``.../error`` (or ``/runtime/init/error`` if the handler
does not load). This serves one event at a time on loopback: :meth:`invoke` queues an event and
waits for its outcome, as Lambda's synchronous Invoke would.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self.events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.outcomes: dict[str, queue.Queue[tuple[str, Any]]] = {}
        self.init_error: Any = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self.reply(404)
                    return
                request_id, body = api.events.get()
                self.reply(
                    200,
                    body,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_error = body
                    for waiting in api.outcomes.values():
                        waiting.put(("init_error", body))
                elif len(parts) == 3 and parts[0] == "invocation":
                    api.outcomes[parts[1]].put((parts[2], body))
                else:
                    self.reply(404)
                    return
                self.reply(202, b"{}", {"Content-Type": "application/json"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def invoke(self, event: Any, timeout: float = 120.0) -> tuple[str, Any]:
        """("response", result) or ("error", error document) or ("init_error", ...)."""
        request_id = str(uuid.uuid4())
        outcome: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.outcomes[request_id] = outcome
        try:
            if self.init_error is not None:
                return "init_error", self.init_error
            self.events.put((request_id, json.dumps(event).encode()))
            return outcome.get(timeout=timeout)
        finally:
            del self.outcomes[request_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

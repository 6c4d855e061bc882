"""Local webhook subscribers for tests: HTTP servers on 127.0.0.1.

``LocalWebhookServer`` is the plumbing every suite's receiver shares: its
own thread, one thread per request, no access log, the request body read,
the answer sent (a client that went away is not an error). A subclass says
what a POST does in ``answer``. ``keep_alive`` serves HTTP/1.1 with
persistent connections (else HTTP/1.0, one connection per request);
``connections`` counts the connections accepted.

``WebhookReceiver`` (the ``receiver`` fixture) records every POST and
answers 200 on ``/ok`` and 500 on any other path, so one receiver serves a
healthy and a failing subscriber. ``bodies`` holds ``(path, parsed JSON)``,
``headers`` each POST's headers.

``RawWebhookReceiver`` keeps each POST exactly as it arrived (path, raw body
bytes, headers), what a receiver verifying signed webhooks needs; a path
``/fail-N/...`` answers 500 to its first N POSTs, then 200.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from herald.testing.polling import wait_until


class LocalWebhookServer:
    """Answers each POST with ``answer(path, body, request)``; ``url`` is the
    server's root plus ``path``."""

    def __init__(self, path: str = "", keep_alive: bool = False) -> None:
        owner = self
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def setup(self) -> None:
                super().setup()
                owner.connections += 1  # one handler per connection

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = owner.answer(self.path, raw, self)
                if status is None:  # the subclass answered (or dropped) it itself
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, body: bytes, request: BaseHTTPRequestHandler) -> int | None:
        """The status to answer with, or None when ``request`` was handled here."""
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookReceiver(LocalWebhookServer):
    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        #: The headers of each POST, in the order of ``bodies``.
        self.headers: list[dict[str, str]] = []
        super().__init__()

    def answer(self, path: str, body: bytes, request: BaseHTTPRequestHandler) -> int:
        self.headers.append(dict(request.headers.items()))
        self.bodies.append((path, json.loads(body)))
        return 200 if path == "/ok" else 500


class RawWebhookReceiver(LocalWebhookServer):
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__()

    def answer(self, path: str, body: bytes, request: BaseHTTPRequestHandler) -> int:
        with self.lock:
            self.received.append({"path": path, "body": body,
                                  "headers": {k.lower(): v for k, v in request.headers.items()}})
            seen = sum(1 for r in self.received if r["path"] == path)
        failing = re.match(r"/fail-(\d+)/", path)
        return 500 if failing and seen <= int(failing.group(1)) else 200

    def at(self, path: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The POSTs to ``path`` once there are ``count`` of them, in arrival order."""
        def arrived() -> list[dict[str, Any]]:
            with self.lock:
                return [r for r in self.received if r["path"] == path]
        wait_until(lambda: len(arrived()) >= count, timeout, what=f"{count} POSTs to {path}")
        return arrived()

"""A stdlib HTTP server on a daemon thread of its own, for operator endpoints.

The storage worker's ``/healthz``/``/readyz`` (``herald.common.health``) and
every process's ``/metrics`` (``herald.common.metrics.listener``) must answer
while the event loop or the storage threads are busy, so they are served
by ``ThreadingHTTPServer`` outside both. This class only binds, starts and
stops such a server; what it answers is the handler's business.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ThreadListener:
    """``handler`` served on ``bind``:``port`` (0: any free port, read ``port``)
    by a daemon thread named ``name`` between ``start()`` and ``stop()``."""

    def __init__(self, bind: str, port: int, handler: type[BaseHTTPRequestHandler],
                 name: str) -> None:
        self._server = ThreadingHTTPServer((bind, port), handler)
        self._server.daemon_threads = True
        self._name = name
        self.bind: str = str(self._server.server_address[0])
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

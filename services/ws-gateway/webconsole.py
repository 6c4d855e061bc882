"""The web console's routes: static files under ``console/`` at ``/console/``.

The console is a single page (HTML, CSS, ES modules and the vendored
msgpack bundle, see ``console/vendor/manifest.json``) that speaks the
gateway's own WebSocket API from the person's browser; being served by the
gateway makes it same-origin, so the handshake's origin check
(``origin.py``) admits it without configuration. No build step: the files
are shipped as package data and served as they are.

This module only serves files; it has no state, no API and no knowledge of
connections. Every other path stays the websocket endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

CONSOLE_DIR = Path(__file__).resolve().parent / "console"


class ConsoleFileHandler(tornado.web.StaticFileHandler):
    """Static files with headers fit for an app that changes with releases."""

    def set_extra_headers(self, path: str) -> None:
        # Revalidate on every load: after an upgrade the browser must not mix
        # cached old modules with new ones (Last-Modified makes it cheap).
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        # Scripts only from here; websockets and the /health probe (how the
        # page tells "not running" from "refused", client.js) to any gateway
        # the person types in.
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss: http: https:; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        )


def routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """Route-table entries; they must come before the gateway's catch-all."""
    return [
        (r"/console", tornado.web.RedirectHandler, {"url": "/console/"}),
        (r"/console/(.*)", ConsoleFileHandler,
         {"path": str(CONSOLE_DIR), "default_filename": "index.html"}),
    ]

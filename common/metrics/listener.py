"""The operator listener: ``GET /metrics`` (Prometheus text) on ``[metrics] bind/port``.

One per process, started by the ``herald`` command before its service
(``herald run`` included: the api, gateway and worker of that process share
it), stopped after it. It serves the default registry (Herald's series, the
backlog gauges and the client library's process metrics) and nothing else:
``/metrics`` is never on a public API port, and every other path is 404.

A scrape reads counters and the last backlog snapshots; it must not run a
query or call another service. The HTTP server runs on a thread of its own
(stdlib), so a scrape never waits for the event loop or a storage thread.
"""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

from oslo_config import cfg
from prometheus_client import REGISTRY, exposition

from herald.common import metrics
from herald.common.thread_listener import ThreadListener

LOG = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # a scraper asks every few seconds
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path != "/metrics":
            raw = b'{"title": "Not found", "description": "Only /metrics is served here."}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)
            return
        encoder, content_type = exposition.choose_encoder(self.headers.get("Accept", ""))
        raw = encoder(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_HEAD = do_GET  # noqa: N815


class MetricsListener(ThreadListener):
    """``/metrics`` over plain HTTP on a daemon thread."""

    def __init__(self, bind: str, port: int) -> None:
        super().__init__(bind, port, _Handler, "metrics-listener")

    def start(self) -> MetricsListener:
        super().start()
        LOG.info("Prometheus metrics on http://%s:%s/metrics", self.bind, self.port)
        return self


def start_from_conf(conf: cfg.ConfigOpts) -> MetricsListener | None:
    """The process's listener per ``[metrics]``, started; None (and the
    hooks switched off) when ``port`` is 0."""
    if not conf.metrics.port:
        metrics.ENABLED = False
        LOG.info("metrics listener off ([metrics] port = 0)")
        return None
    metrics.ENABLED = True
    return MetricsListener(conf.metrics.bind, conf.metrics.port).start()

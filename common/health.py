"""Liveness and readiness probes for every Herald service, and systemd's notify socket.

Two questions, two endpoints (as Kubernetes, Docker ``HEALTHCHECK`` and load
balancers ask them):

- ``GET /healthz`` (liveness): the process runs its event loop / HTTP thread.
  Always 200 while it answers at all; never touches the broker or database,
  so a broker outage does not make an orchestrator restart healthy processes.
- ``GET /readyz`` (readiness): 200 when the service can do its job right
  now, 503 otherwise (broker or database unreachable, starting, stopping).
  The check is cheap (a storage ``ping``) with a short timeout, and its
  result is cached for ``CACHE_SECONDS`` so that a probe storm costs at most
  one check per second; at most one check runs at a time.

The api and the ws-gateway mount ``routes(probe)`` in their Tornado
applications; the storage worker, which has no HTTP server, runs a
``HealthListener`` (stdlib, its own thread) on ``[storage] health_port``.
``sd_notify`` tells systemd (``Type=notify`` units) when a service is ready
and when it is stopping.

This module only reports: it must not decide anything about the service's
lifecycle, and its checks must never block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import tornado.web

from herald.common.context import RequestContext
from herald.common.thread_listener import ThreadListener

LOG = logging.getLogger(__name__)

# How long one readiness check may take before the answer is "not ready",
# and how long a finished check's result is reused.
CHECK_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 1.0


class NotReady(Exception):
    """Raised by a readiness check; its message is shown in the 503 body."""


def _describe(exc: BaseException) -> str:
    # HeraldError carries the operator-facing text in ``description``.
    return getattr(exc, "description", None) or str(exc) or type(exc).__name__


class ReadinessProbe:
    """Runs an async readiness check at most once per ``ttl``, with a timeout.

    ``check`` raises (anything) when the service is not ready. ``stopping``
    short-circuits to "not ready" so that load balancers drain a stopping
    process before it closes its listener.
    """

    def __init__(self, check: Callable[[], Awaitable[None]],
                 stopping: Callable[[], bool] = lambda: False,
                 timeout: float = CHECK_TIMEOUT_SECONDS, ttl: float = CACHE_SECONDS) -> None:
        self._check = check
        self._stopping = stopping
        self._timeout = timeout
        self._ttl = ttl
        self._result: tuple[bool, str] | None = None
        self._checked_at = 0.0
        self._pending: asyncio.Future[tuple[bool, str]] | None = None

    async def _run(self) -> tuple[bool, str]:
        try:
            await self._check()
            result = (True, "ready")
        except Exception as exc:
            result = (False, _describe(exc))
        self._result, self._checked_at = result, time.monotonic()
        self._pending = None
        return result

    async def status(self) -> tuple[bool, str]:
        """(ready, detail)."""
        if self._stopping():
            return False, "stopping"
        if self._result is not None and time.monotonic() - self._checked_at < self._ttl:
            return self._result
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._run())
        try:
            # shield: a probe that gives up does not cancel the check, the
            # next probe picks its result up.
            return await asyncio.wait_for(asyncio.shield(self._pending), self._timeout)
        except TimeoutError:
            return False, f"readiness check did not finish within {self._timeout:.1f} s"


def storage_probe(storage: Any, stopping: Callable[[], bool] = lambda: False) -> ReadinessProbe:
    """Readiness of an edge service: a storage worker answers ``ping`` over
    the broker and reaches its database."""
    async def check() -> None:
        if not await storage.ping(RequestContext(project_id="", request_id="req-readyz")):
            raise NotReady("the storage worker cannot reach its database")

    return ReadinessProbe(check, stopping)


class _ProbeHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")  # type: ignore[assignment]

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        if self.request.method != "HEAD":
            self.write(json.dumps(body))

    def log_exception(self, *args: Any) -> None:  # probes never log tracebacks
        pass


class LivenessHandler(_ProbeHandler):
    def get(self) -> None:
        self._reply(200, {"alive": True})

    head = get


class ReadinessHandler(_ProbeHandler):
    def initialize(self, probe: ReadinessProbe) -> None:
        self.probe = probe

    async def get(self) -> None:
        ready, detail = await self.probe.status()
        self._reply(200 if ready else 503, {"ready": ready, "detail": detail})

    head = get


def routes(probe: ReadinessProbe) -> list[tuple[str, type[tornado.web.RequestHandler],
                                                dict[str, Any]]]:
    """Tornado rules for ``/healthz`` and ``/readyz``; put them first."""
    return [(r"/healthz", LivenessHandler, {}),
            (r"/readyz", ReadinessHandler, {"probe": probe})]


class BlockingProbe:
    """The thread-based twin of ``ReadinessProbe`` for processes without an
    event loop: ``check`` (blocking) runs on a thread of its own, so a check
    hung on a dead broker never blocks the HTTP thread for longer than
    ``timeout``, and a second check does not start while it hangs."""

    def __init__(self, check: Callable[[], None], timeout: float = CHECK_TIMEOUT_SECONDS,
                 ttl: float = CACHE_SECONDS) -> None:
        self._check = check
        self._timeout = timeout
        self._ttl = ttl
        self._lock = threading.Lock()
        self._result: tuple[bool, str] | None = None
        self._checked_at = 0.0
        self._running: threading.Event | None = None
        self._started_at = 0.0

    def _run(self, done: threading.Event) -> None:
        try:
            self._check()
            result = (True, "ready")
        except Exception as exc:
            result = (False, _describe(exc))
        with self._lock:
            self._result, self._checked_at = result, time.monotonic()
            self._running = None
        done.set()

    def status(self) -> tuple[bool, str]:
        with self._lock:
            if self._result is not None and time.monotonic() - self._checked_at < self._ttl:
                return self._result
            done = self._running
            if done is None:
                done = self._running = threading.Event()
                self._started_at = time.monotonic()
                threading.Thread(target=self._run, args=(done,), name="readiness-check",
                                 daemon=True).start()
        if done.wait(self._timeout):
            with self._lock:
                assert self._result is not None
                return self._result
        return False, (f"readiness check running for "
                       f"{time.monotonic() - self._started_at:.1f} s without an answer")


class HealthListener(ThreadListener):
    """``/healthz`` and ``/readyz`` over plain HTTP on a thread (storage worker)."""

    def __init__(self, bind: str, port: int, ready: Callable[[], tuple[bool, str]]) -> None:
        self._ready = ready

        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # Docker probes every few seconds
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._reply(200, {"alive": True})
                elif path == "/readyz":
                    ready, detail = listener._ready()
                    self._reply(200 if ready else 503, {"ready": ready, "detail": detail})
                else:
                    self._reply(404, {"title": "Not found", "description": ""})

            do_HEAD = do_GET  # noqa: N815

        super().__init__(bind, port, Handler, "health-listener")

    def start(self) -> None:
        super().start()
        LOG.info("health endpoints /healthz and /readyz on port %s", self.port)


def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd's notify socket, if any.

    A no-op outside ``Type=notify`` units (no ``NOTIFY_SOCKET``); never
    raises: a lost notification must not stop a service.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        LOG.warning("could not notify systemd (%s): %s", state, exc)
        return False
    return True

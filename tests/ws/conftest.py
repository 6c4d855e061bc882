"""Fixtures of the websocket gateway tests: gateways on an event loop thread.

A ``GatewayHarness`` runs one embedded storage worker (SQLite and ``file://``
tooz under ``tmp_path``, no RPC server) behind an ``InProcessCaller`` — the
same serialization as RabbitMQ — and any number of ``WSGatewayService``
instances sharing it, each with its own configuration, on one asyncio loop
in a background thread. Tests talk to the gateways over real sockets with
synchronous clients (websocket-client, python-zaqarclient).

The caller is wrapped so that calls on queues named ``slow-*`` take
``SLOW_SECONDS`` (how tests make one storage call slow), and calls on
queues named ``down-*`` / ``bug-*`` fail as an unreachable storage (503) or a
storage bug (500) would.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from herald.common import config, coordination, errors
from herald.common.context import RequestContext
from herald.common.rpc.caller import InProcessCaller
from herald.common.rpc.storage_api import StorageAPI
from herald.ws_gateway.service import WSGatewayService

SLOW_SECONDS = 1.5


class SlowQueueCaller:
    """Delays or fails calls about ``slow-*``, ``down-*`` and ``bug-*`` queues."""

    def __init__(self, inner: InProcessCaller) -> None:
        self._inner = inner

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        queue = str(kwargs.get("queue", ""))
        if queue.startswith("slow-"):
            await asyncio.sleep(SLOW_SECONDS)
        if queue.startswith("down-"):
            raise errors.ServiceUnavailable(
                "The storage service did not answer in time. Please try again in a few seconds.")
        if queue.startswith("bug-"):
            raise errors.InternalError("KeyError: 'oops'")
        return await self._inner.call(ctxt, method, **kwargs)

    def stop(self) -> None:
        self._inner.stop()


def make_conf(tmp: Path, **ws_overrides: Any) -> cfg.ConfigOpts:
    conf = config.load([], conf=cfg.ConfigOpts())
    conf.set_override("connection", f"sqlite:///{tmp}/herald.sqlite", group="storage")
    conf.set_override("backend_url", f"file://{tmp}/coordination", group="coordination")
    conf.set_override("port", 0, group="ws_gateway")
    for name, value in ws_overrides.items():
        conf.set_override(name, value, group="ws_gateway")
    return conf


class GatewayHarness:
    def __init__(self, tmp: Path) -> None:
        from herald.storage.worker import StorageWorker

        self.tmp = tmp
        self.conf = make_conf(tmp)
        self.worker = StorageWorker(self.conf, coordination.new_member_id(), serve_rpc=False)
        self.worker.start()
        self.caller = SlowQueueCaller(InProcessCaller(self.worker.endpoint))
        self.storage = StorageAPI(self.caller)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ws-test-loop",
                                        daemon=True)
        self._thread.start()
        self.gateways: list[WSGatewayService] = []

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def gateway(self, **ws_overrides: Any) -> WSGatewayService:
        """A started gateway with its own ``[ws_gateway]`` settings."""
        conf = make_conf(self.tmp, **ws_overrides)
        service = WSGatewayService(conf, self.storage, coordination.new_member_id(),
                                   local=self.worker.local)
        self.run(service.start())
        self.gateways.append(service)
        return service

    def close(self) -> None:
        for service in self.gateways:
            self.run(service.stop())
        # Let cancelled per-connection tasks finish before the loop stops.
        self.run(asyncio.sleep(0.2))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.caller.stop()
        self.worker.stop()


def ws_url(service: WSGatewayService) -> str:
    return f"ws://127.0.0.1:{service.port}/"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHarness]:
    h = GatewayHarness(tmp_path_factory.mktemp("ws"))
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def gateway(harness: GatewayHarness) -> WSGatewayService:
    return harness.gateway()


@pytest.fixture
def project() -> str:
    """A project of its own per test: tests never see each other's queues."""
    return f"p-{uuid.uuid4().hex[:8]}"

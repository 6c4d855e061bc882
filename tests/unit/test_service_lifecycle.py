"""Every service has one lifecycle: ``await start()``, ``await stop(grace)`` (drain),
``await kill()`` (now) -- herald.common.lifecycle -- and the CLI runs any of them
the same way.

Through the public interface: real sockets on 127.0.0.1, a storage whose calls
the test holds and releases (``HeldCaller``), SQLite and tooz ``file://`` under
``tmp_path`` where a real worker runs. No broker: the services are given their
storage (or, for ``herald run``, build the in-process one).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from oslo_config import cfg

from herald.api.service import APIService
from herald.cli import main
from herald.cli.embedded import EmbeddedService
from herald.common import config, coordination
from herald.common.context import RequestContext
from herald.common.rpc.local_bus import LocalBus
from herald.common.rpc.storage_api import StorageAPI
from herald.storage.worker import StorageWorker
from herald.ws_gateway.service import WSGatewayService

#: Long enough that only a kill or a wait for the test's release ends a call.
HELD_SECONDS = 30.0
#: What "at once" means for a kill (a drain would wait HELD_SECONDS).
AT_ONCE = 3.0


class HeldCaller:
    """A storage caller whose calls wait until the test releases them."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        self.entered.set()
        await asyncio.wait_for(self.release.wait(), HELD_SECONDS)
        return True

    def stop(self) -> None:
        pass


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[cfg.ConfigOpts]:
    conf = config.load([], conf=cfg.ConfigOpts())
    conf.set_override("connection", f"sqlite:///{tmp_path}/herald.sqlite", group="storage")
    conf.set_override("backend_url", f"file://{tmp_path}/coordination", group="coordination")
    for group in ("api", "ws_gateway"):
        conf.set_override("port", 0, group=group)
        conf.set_override("bind", "127.0.0.1", group=group)
    yield conf


def _ping(port: int) -> asyncio.Future[tornado.httpclient.HTTPResponse]:
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": "p"}
    return asyncio.ensure_future(client.fetch(f"http://127.0.0.1:{port}/v2/ping",
                                              headers=headers, raise_error=False,
                                              request_timeout=60))


def _frame(action: str) -> str:
    return json.dumps({"action": action, "body": {},
                       "headers": {"Client-ID": str(uuid.uuid4()), "X-Project-ID": "p"}})


# -- REST API ----------------------------------------------------------------------


def test_api_stop_answers_the_request_in_flight(conf: cfg.ConfigOpts) -> None:
    async def scenario() -> None:
        caller = HeldCaller()
        service = APIService(conf, StorageAPI(caller))
        await service.start()
        assert service.port
        request = _ping(service.port)
        await asyncio.wait_for(caller.entered.wait(), 5)
        stopping = asyncio.ensure_future(service.stop(grace=10.0))
        await asyncio.sleep(0)
        assert not stopping.done()  # draining: the request is still in flight
        caller.release.set()
        response = await asyncio.wait_for(request, 10)
        await asyncio.wait_for(stopping, 10)
        assert response.code == 204
        await service.stop()  # twice is fine
        await service.kill()  # and kill after stop too

    asyncio.run(scenario())


def test_api_kill_does_not_wait_for_the_request_in_flight(conf: cfg.ConfigOpts) -> None:
    async def scenario() -> None:
        caller = HeldCaller()
        service = APIService(conf, StorageAPI(caller))
        await service.start()
        request = _ping(service.port)  # type: ignore[arg-type]
        await asyncio.wait_for(caller.entered.wait(), 5)
        started = time.monotonic()
        await service.kill()
        assert time.monotonic() - started < AT_ONCE
        # The client sees its connection go, without an answer.
        with pytest.raises(tornado.httpclient.HTTPClientError, match="Stream closed"):
            await asyncio.wait_for(request, AT_ONCE)
        caller.release.set()

    asyncio.run(scenario())


def test_api_waiters_are_the_given_bus_hub(conf: cfg.ConfigOpts) -> None:
    local = LocalBus()
    service = APIService(conf, StorageAPI(HeldCaller()), local=local)
    assert service.waiters is local.waiters
    assert service.waiters.waiting("p", "q") == 0
    assert APIService(conf, StorageAPI(HeldCaller())).waiters is not local.waiters


# -- websocket gateway -------------------------------------------------------------


def test_gateway_stop_answers_the_request_in_flight(conf: cfg.ConfigOpts) -> None:
    async def scenario() -> None:
        caller = HeldCaller()
        gateway = WSGatewayService(conf, StorageAPI(caller))
        await gateway.start()
        ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{gateway.port}/")
        await ws.write_message(_frame("queue_list"))
        await asyncio.wait_for(caller.entered.wait(), 5)
        stopping = asyncio.ensure_future(gateway.stop(grace=10.0))
        await asyncio.sleep(0.05)
        assert not stopping.done()
        caller.release.set()
        reply = await asyncio.wait_for(ws.read_message(), 10)
        assert reply is not None and json.loads(reply)["request"]["action"] == "queue_list"
        await asyncio.wait_for(stopping, 10)
        assert await asyncio.wait_for(ws.read_message(), 5) is None  # closed (1001)
        assert ws.close_code == 1001
        await gateway.stop()

    asyncio.run(scenario())


def test_gateway_kill_does_not_wait_for_the_request_in_flight(conf: cfg.ConfigOpts) -> None:
    async def scenario() -> None:
        caller = HeldCaller()
        gateway = WSGatewayService(conf, StorageAPI(caller))
        await gateway.start()
        ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{gateway.port}/")
        await ws.write_message(_frame("queue_list"))
        await asyncio.wait_for(caller.entered.wait(), 5)
        started = time.monotonic()
        await gateway.kill()
        assert time.monotonic() - started < AT_ONCE
        # No reply: the connection is gone.
        assert await asyncio.wait_for(ws.read_message(), AT_ONCE) is None
        assert not gateway.inflight or all(task.done() for task in gateway.inflight)

    asyncio.run(scenario())


# -- storage worker ------------------------------------------------------------------


def test_worker_start_stop_kill_are_awaitable(conf: cfg.ConfigOpts) -> None:
    async def scenario() -> None:
        worker = StorageWorker(conf, coordination.new_member_id(), serve_rpc=False)
        await worker.start()
        assert worker.endpoint.ping(RequestContext(project_id="p")) is True
        await worker.stop()
        await worker.stop()  # twice is fine
        other = StorageWorker(conf, coordination.new_member_id(), serve_rpc=False)
        await other.start()
        started = time.monotonic()
        await other.kill()
        assert time.monotonic() - started < AT_ONCE

    asyncio.run(scenario())


def test_worker_wakes_the_long_polls_of_its_bus(conf: cfg.ConfigOpts) -> None:
    local = LocalBus()
    worker = StorageWorker(conf, coordination.new_member_id(), serve_rpc=False, local=local)
    assert worker.wiring.wakeups.hub is local.waiters
    woken: list[str] = []

    async def scenario() -> None:
        with local.waiters.subscribe("p", "q") as waiter:
            worker.wiring.wakeups.messages_available("p", "q")
            await asyncio.wait_for(waiter.event.wait(), 1)
            woken.append("q")

    asyncio.run(scenario())
    assert woken == ["q"]


# -- herald run ------------------------------------------------------------------------


def test_embedded_service_serves_then_drains(conf: cfg.ConfigOpts, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        service = EmbeddedService(conf, coordination.new_member_id())
        assert service.api.local is service.gateway.local is service.worker.local
        await service.start()
        response = await _ping(service.api.port)  # type: ignore[arg-type]
        assert response.code == 204
        ws = await tornado.websocket.websocket_connect(
            f"ws://127.0.0.1:{service.gateway.port}/")
        await ws.write_message(_frame("ping"))
        assert json.loads(await asyncio.wait_for(ws.read_message(), 5))["headers"]["status"]
        await service.stop(grace=2.0)
        assert await asyncio.wait_for(ws.read_message(), 5) is None

    asyncio.run(scenario())


def test_embedded_service_kill_is_immediate(conf: cfg.ConfigOpts, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        service = EmbeddedService(conf, coordination.new_member_id())
        await service.start()
        started = time.monotonic()
        await service.kill()
        assert time.monotonic() - started < AT_ONCE

    asyncio.run(scenario())


# -- the CLI runs every service the same way ---------------------------------------------


class RecordingService:
    def __init__(self, stop_seconds: float = 0.0) -> None:
        self.events: list[str] = []
        self._stop_seconds = stop_seconds

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self, grace: float | None = None) -> None:
        self.events.append("stop")
        await asyncio.sleep(self._stop_seconds)
        self.events.append("stopped")

    async def kill(self) -> None:
        self.events.append("kill")


def test_cli_is_a_table_of_services() -> None:
    assert set(main.SERVICES) == {"api", "ws-gateway", "storage", "run"}


@pytest.mark.parametrize("signals, expected", [
    (1, ["start", "stop", "stopped"]),
    (2, ["start", "stop", "kill"]),
])
def test_cli_stops_on_a_signal_and_kills_on_a_second(
        monkeypatch: pytest.MonkeyPatch, signals: int, expected: list[str]) -> None:
    monkeypatch.setattr(main, "_freeze_startup_heap", lambda: None)
    monkeypatch.setattr(main.health, "sd_notify", lambda state: None)
    service = RecordingService(stop_seconds=0.0 if signals == 1 else 30.0)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        running = asyncio.ensure_future(main._run(service))
        while "start" not in service.events:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the signal handlers are installed after start
        os.kill(os.getpid(), signal.SIGTERM)
        if signals == 2:
            while "stop" not in service.events:
                await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, 10)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    asyncio.run(scenario())
    assert service.events == expected

"""The embedded stack: one storage worker, the REST API and websocket gateways in this process.

An ``EmbeddedStack`` runs a storage worker on SQLite and ``file://`` tooz
under a directory of the test's (no RPC server, no broker) behind an
``InProcessCaller``, which serializes every call and reply with the bus's
JSON serializer, wrapped in a ``FaultyCaller`` (queue names choose
failures). The REST API (``start_api()``) and any number of websocket
gateways (``gateway(**overrides)``, each with its own ``[ws_gateway]``
settings) share that storage and run on one asyncio loop in a background
thread; tests talk to them over real sockets with synchronous clients.
They share one ``LocalBus`` (``self.local``) with the worker, as ``herald
run`` does: a post wakes the API's and gateways' long polls and pushes reach
the gateways in-process.

Contract: ``close()`` stops the gateways, then the API, then the caller and
the worker (an async ``stop()`` runs on the loop), and last the loop; call it
once construction succeeded. Lifecycle methods may be sync or async: the
stack awaits what returns an awaitable.
Configuration is a private ``ConfigOpts`` (never the global one), so
``override()`` cannot leak into other suites; ``reset_overrides()`` undoes
them between tests.

Thread-safety: the services live on the loop thread; the test thread
reaches them only through ``run(coro)``. Lifecycle calls (``start``,
``start_api``, ``gateway``, ``close``) are made from one test thread.

This module must not hold pytest fixtures or assertions: the conftests wrap
it (``tests/api``, ``tests/ws``, ``tests/security``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from herald.common import config, coordination
from herald.common.rpc.caller import InProcessCaller
from herald.common.rpc.local_bus import LocalBus
from herald.common.rpc.storage_api import StorageAPI
from herald.testing.faults import FaultyCaller

if TYPE_CHECKING:
    from herald.api.service import APIService
    from herald.ws_gateway.service import WSGatewayService

# How long ``close()`` lets a cancelled connection's tasks end before the
# loop stops (a stopped gateway cancels them; their ``finally`` blocks run
# on the next iterations).
SETTLE_SECONDS = 0.2


def make_conf(tmp: Path, **ws_overrides: Any) -> cfg.ConfigOpts:
    """A private configuration for a stack whose files live under ``tmp``.

    SQLite and tooz's ``file://`` backend under ``tmp``; the API on
    127.0.0.1 and the gateway on a port the OS picks; ``ws_overrides`` go to
    ``[ws_gateway]``.
    """
    conf = config.load([], conf=cfg.ConfigOpts())
    conf.set_override("connection", f"sqlite:///{tmp}/herald.sqlite", group="storage")
    conf.set_override("backend_url", f"file://{tmp}/coordination", group="coordination")
    conf.set_override("port", 0, group="api")
    conf.set_override("bind", "127.0.0.1", group="api")
    conf.set_override("port", 0, group="ws_gateway")
    for name, value in ws_overrides.items():
        conf.set_override(name, value, group="ws_gateway")
    return conf


class LoopThread:
    """An asyncio event loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run ``coro`` on the loop and wait for its result from this thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


async def _awaited(awaitable: Any) -> Any:
    # run_coroutine_threadsafe takes coroutines only, not futures.
    return await awaitable


async def _start_on_loop(start: Callable[[], Any]) -> None:
    # Services whose start() is synchronous must still be started with the
    # loop running (Tornado binds its sockets to the current loop).
    result = start()
    if inspect.isawaitable(result):
        await result


class EmbeddedStack:
    """A storage worker, the REST API and gateways on a loop thread (see module doc)."""

    def __init__(self, tmp: Path, slow_seconds: float = 0.5,
                 loop_name: str = "herald-stack-loop") -> None:
        from herald.storage.worker import StorageWorker

        self.tmp = tmp
        self.conf = make_conf(tmp)
        self._overrides: list[tuple[str, str | None]] = []
        self._loop_thread = LoopThread(loop_name)
        self.loop = self._loop_thread.loop
        self.local = LocalBus()
        self.worker = StorageWorker(self.conf, coordination.new_member_id(), serve_rpc=False,
                                    local=self.local)
        self._finish(self.worker.start())
        self.caller = FaultyCaller(InProcessCaller(self.worker.endpoint), slow_seconds)
        self.storage = StorageAPI(self.caller)
        self.service: APIService | None = None
        self.gateways: list[WSGatewayService] = []
        self._reader: Any = None  # an engine for outbox_rows(), made on first use

    def _finish(self, result: Any) -> None:
        """Complete a lifecycle call, whether the service made it sync or async."""
        if inspect.isawaitable(result):
            self.run(_awaited(result))

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return self._loop_thread.run(coro, timeout)

    # -- services ---------------------------------------------------------

    def start_api(self) -> APIService:
        """Start the REST API on this stack's configuration (``self.service``)."""
        from herald.api.service import APIService

        service = APIService(self.conf, self.storage, local=self.local)
        self.run(_start_on_loop(service.start))
        self.service = service
        return service

    @property
    def base_url(self) -> str:
        assert self.service is not None, "start_api() first"
        return f"http://127.0.0.1:{self.service.port}"

    def gateway(self, **ws_overrides: Any) -> WSGatewayService:
        """A started gateway with its own ``[ws_gateway]`` settings."""
        return self.start_gateway(make_conf(self.tmp, **ws_overrides))

    def start_gateway(self, conf: cfg.ConfigOpts) -> WSGatewayService:
        """A started gateway on ``conf`` (e.g. ``self.conf``, shared with the API)."""
        from herald.ws_gateway.service import WSGatewayService

        service = WSGatewayService(conf, self.storage, coordination.new_member_id(),
                                   local=self.local)
        self.run(_start_on_loop(service.start))
        self.gateways.append(service)
        return service

    # -- state ------------------------------------------------------------

    def outbox_rows(self, project: str, queue: str) -> list[Any]:
        """The storage database's outbox rows of one queue, oldest first.

        A post writes its notifications' rows in its own transaction, so
        right after the post answered these say what will ever be pushed
        for it: the state to check instead of waiting for a push not to come.
        """
        import sqlalchemy as sa

        from herald.storage.schema import outbox

        if self._reader is None:
            self._reader = sa.create_engine(self.conf.storage.connection)
        stmt = (sa.select(outbox).where(outbox.c.project == project, outbox.c.queue == queue)
                .order_by(outbox.c.seq))
        with self._reader.connect() as conn:
            return list(conn.execute(stmt).all())

    # -- configuration ----------------------------------------------------

    def override(self, name: str, value: Any, group: str | None = None) -> None:
        self.conf.set_override(name, value, group=group)
        self._overrides.append((name, group))

    def reset_overrides(self) -> None:
        for name, group in self._overrides:
            self.conf.clear_override(name, group=group)
        self._overrides.clear()

    # -- lifecycle --------------------------------------------------------

    def close(self) -> None:
        try:
            for gateway in self.gateways:
                self.run(gateway.stop())
            if self.service is not None:
                self.run(self.service.stop(grace=2.0))
            if self.gateways:
                self.run(asyncio.sleep(SETTLE_SECONDS))
        finally:
            try:
                self.caller.stop()
                # Before the loop stops: an async stop() would need it.
                self._finish(self.worker.stop())
            finally:
                self._loop_thread.stop()
                if self._reader is not None:
                    self._reader.dispose()

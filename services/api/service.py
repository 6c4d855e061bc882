"""The REST API service: a Tornado HTTP server around ``app.make_app``.

Lifecycle (``herald.common.lifecycle``): ``start()`` binds ``[api]
bind``/``port`` on the running asyncio loop (port 0 picks a free port,
exposed as ``.port``); ``stop(grace)`` stops accepting, answers the long
polls at once with what they have, answers every request from then on with
``Connection: close`` (and closes its connection after it), lets in-flight
requests finish for up to ``grace`` seconds (default ``[api]
drain_timeout``, which covers a storage call's timeout), answers those still
running then with 503 (their storage calls are abandoned), then closes the
remaining idle connections and the storage caller; ``kill()`` closes the
listeners and every connection at once. Lifecycle only: no request handling
here.

What it owns: built as ``APIService(conf)`` (the ``herald api`` process) it
creates, starts and stops its own storage caller (``OsloCaller``) and the
listener of long-poll wake-ups (``WakeupListener``). Given a ``storage``
(embedded mode, harnesses), the caller behind it is the giver's. Its long
polls wait on ``self.waiters`` (``WaiterHub.waiting(project, queue)``
counts them), the hub of the ``LocalBus`` it was given (``local=``, shared
with a worker of the same process) or of its own.

Stopping never resets a connection the kernel already accepted: see
``herald.common.listeners``.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import tornado.httpserver
import tornado.netutil
import tornado.web
from oslo_config import cfg

from herald.api.app import make_app
from herald.api.in_flight import InFlight
from herald.common import coordination, listeners
from herald.common.rpc import wakeups
from herald.common.rpc.local_bus import LocalBus
from herald.common.rpc.storage_api import StorageAPI
from herald.common.rpc.storage_link import StorageLink

LOG = logging.getLogger(__name__)

# How long the requests still running at the drain deadline have to write
# their 503 once their storage calls are abandoned.
ABANDON_SECONDS = 1.0
# A connection taken in from the backlog at stop has sent its request (or is
# about to); this long is left for it to be read and counted in flight
# before idle connections are closed.
STOP_SETTLE_SECONDS = 0.2


class APIService:
    def __init__(self, conf: cfg.ConfigOpts, storage: StorageAPI | None = None, *,
                 member_id: str | None = None, local: LocalBus | None = None) -> None:
        self._conf = conf
        self.member_id = member_id or coordination.new_member_id()
        self.local = local if local is not None else LocalBus()
        #: The long polls of this service wait here (``waiting()`` counts them).
        self.waiters: wakeups.WaiterHub = self.local.waiters
        # Without a storage given, this process talks to the workers itself.
        self._link = StorageLink(conf, self.member_id, self.waiters, storage)
        self._storage = self._link.storage
        self._in_flight = InFlight()
        self._server: tornado.httpserver.HTTPServer | None = None
        self._app: tornado.web.Application | None = None
        self._sockets: list[socket.socket] = []
        self.port: int | None = None

    def start(self) -> asyncio.Future[None]:
        """Listen; call on the running asyncio loop and await the result.

        Binding does not block, so it happens before this returns: a caller
        that does not await (older harnesses) still has ``.port``."""
        self._link.start()
        app = make_app(self._conf, self._storage, self._in_flight)
        # Handlers long-poll on this service's hub (herald.api.longpoll).
        app.settings["waiters"] = self.waiters
        self._app = app
        self._server = tornado.httpserver.HTTPServer(
            app, max_body_size=self._conf.api.max_body_size, xheaders=False)
        self._sockets = tornado.netutil.bind_sockets(
            self._conf.api.port, address=self._conf.api.bind)
        self._server.add_sockets(self._sockets)
        self.port = self._sockets[0].getsockname()[1]
        LOG.info("REST API listening on %s:%s", self._conf.api.bind, self.port)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        started.set_result(None)
        return started

    async def stop(self, grace: float | None = None) -> None:
        """Drain (see the module docstring); safe to call twice."""
        if grace is None:
            grace = self._link.drain_seconds(self._conf.api.drain_timeout)
        if self._server is None:
            await self._release()
            return
        server, self._server = self._server, None
        listeners.stop_accepting(server)  # no new connections from here on
        self._in_flight.draining = True  # every answer closes its connection
        # Long polls answer now with what they have, instead of holding the
        # stop up until their deadline.
        self.waiters.release(self._app)
        loop = asyncio.get_running_loop()
        settled = loop.time() + min(STOP_SETTLE_SECONDS, grace)
        deadline = loop.time() + grace
        while loop.time() < deadline and (self._in_flight.count > 0 or loop.time() < settled):
            await asyncio.sleep(0.02)
        if self._in_flight.count > 0:
            LOG.warning("drain deadline (%.1f s): answering the %d request(s) still in "
                        "flight 503", grace, self._in_flight.count)
            self._in_flight.abandon()
            # Their storage calls too, so their coroutines end now.
            self._link.abandon()
            answered = loop.time() + ABANDON_SECONDS
            while self._in_flight.count > 0 and loop.time() < answered:
                await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=grace)
        except TimeoutError:
            LOG.warning("some connections did not close in %.1f s", grace)
        await self._release()
        LOG.info("REST API stopped")

    async def kill(self) -> None:
        """Close the listeners and every connection now; requests in flight
        are abandoned (their clients see the connection close)."""
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
            self.waiters.release(self._app)
            # close_all_connections() waits for each to close; closing their
            # streams is immediate.
            for connection in list(getattr(server, "_connections", ())):
                connection.stream.close()
            LOG.info("REST API killed")
        await self._release()

    async def _release(self) -> None:
        """Stop the caller and the wake-up listener this service owns."""
        await self._link.stop()

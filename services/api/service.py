"""The REST API service: a Tornado HTTP server around ``app.make_app``.

``start()`` binds ``[api] bind``/``port`` on the running asyncio loop (port 0
picks a free port, exposed as ``.port``); ``stop()`` stops accepting, lets
in-flight requests finish for a short grace period, then closes every
connection. Lifecycle only: no request handling here.

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
from herald.api.handlers.base import InFlight
from herald.common import listeners
from herald.common.rpc import wakeups
from herald.common.rpc.storage_api import StorageAPI

LOG = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
# A connection taken in from the backlog at stop has sent its request (or is
# about to); this long is left for it to be read and counted in flight
# before idle connections are closed.
STOP_SETTLE_SECONDS = 0.2


class APIService:
    def __init__(self, conf: cfg.ConfigOpts, storage: StorageAPI) -> None:
        self._conf = conf
        self._storage = storage
        self._in_flight = InFlight()
        self._server: tornado.httpserver.HTTPServer | None = None
        self._app: tornado.web.Application | None = None
        self._sockets: list[socket.socket] = []
        self.port: int | None = None

    def start(self) -> None:
        """Listen; must be called with the asyncio loop running (or current)."""
        app = make_app(self._conf, self._storage, self._in_flight)
        self._app = app
        self._server = tornado.httpserver.HTTPServer(
            app, max_body_size=self._conf.api.max_body_size, xheaders=False)
        self._sockets = tornado.netutil.bind_sockets(
            self._conf.api.port, address=self._conf.api.bind)
        self._server.add_sockets(self._sockets)
        self.port = self._sockets[0].getsockname()[1]
        LOG.info("REST API listening on %s:%s", self._conf.api.bind, self.port)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        listeners.stop_accepting(server)  # no new connections from here on
        # Long polls answer now with what they have, instead of holding the
        # stop up until their deadline.
        wakeups.HUB.release(self._app)
        loop = asyncio.get_running_loop()
        settled = loop.time() + min(STOP_SETTLE_SECONDS, grace)
        deadline = loop.time() + grace
        while loop.time() < deadline and (self._in_flight.count > 0 or loop.time() < settled):
            await asyncio.sleep(0.02)
        if self._in_flight.count > 0:
            LOG.warning("stopping with %d request(s) still in flight", self._in_flight.count)
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=grace)
        except TimeoutError:
            LOG.warning("some connections did not close in %.1f s", grace)
        LOG.info("REST API stopped")

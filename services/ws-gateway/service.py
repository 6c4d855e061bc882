"""The WebSocket gateway service: Tornado listener, tooz membership, lifecycle.

``WSGatewayService(conf, storage, member_id)`` serves the websocket API on
``[ws_gateway] bind/port`` (any path upgrades; ``GET /health`` without an
upgrade is the detailed health report), joins the tooz group ``herald.ws``
under its member id with a heartbeat, and on ``stop()``:

1. stops accepting connections; frames arriving afterwards are ignored;
2. waits up to ``shutdown_timeout`` for in-flight requests and lets their
   replies reach the sockets;
3. closes every connection with 1001 (going away), which deletes their
   connection subscriptions;
4. stops taking pushes, leaves the group and stops the coordinator.

Pushes for websocket subscribers (``push``) arrive in-process in embedded
mode and, with ``push_rpc``, as oslo.messaging casts to topic ``[rpc]
ws_topic`` under this gateway's member id.

The gateway holds no data a client needs besides its live connection:
everything goes to storage over ``StorageAPI``, so clients may reconnect to
any gateway. This module wires parts together; frames, actions and
per-connection bookkeeping live in ``codec``, ``dispatch``/``actions`` and
``connection``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from oslo_config import cfg
from tooz import coordination as tooz_coordination

from herald.common import coordination, listeners
from herald.common import health as probes
from herald.common.context import RequestContext
from herald.common.rpc import wakeups, ws_push
from herald.common.rpc.server import RPCServer
from herald.common.rpc.storage_api import StorageAPI
from herald.ws_gateway import webconsole
from herald.ws_gateway.connection import Connection
from herald.ws_gateway.dispatch import Dispatcher
from herald.ws_gateway.push import PushEndpoint, Pushes

LOG = logging.getLogger(__name__)

_GROUP = coordination.WS_GROUP.encode()


class WSGatewayService:
    def __init__(self, conf: cfg.ConfigOpts, storage: StorageAPI, member_id: str,
                 push_rpc: bool = False) -> None:
        self.conf = conf
        self.storage = storage
        self.member_id = member_id
        self.dispatcher = Dispatcher(storage, conf)
        self.connections: set[Connection] = set()
        self.inflight: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.port: int | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._coordinator: tooz_coordination.CoordinationDriver | None = None
        self._push_rpc = push_rpc
        self._push_server: RPCServer | None = None
        self.pushes: Pushes | None = None
        self._membership: asyncio.Task[None] | None = None
        # /readyz: 503 while storage (broker, worker, database) is unreachable
        # and from the moment stop() begins, so load balancers drain us.
        self.readiness = probes.storage_probe(storage, lambda: self.stopping)

    def make_app(self) -> tornado.web.Application:
        opts = self.conf.ws_gateway
        return tornado.web.Application(
            # The console first: every other path is the websocket endpoint.
            [*probes.routes(self.readiness), *webconsole.routes(),
             (r"/.*", Connection, {"gateway": self})],
            websocket_max_message_size=opts.max_frame_size,
            websocket_ping_interval=opts.ping_interval or None,
        )

    async def start(self) -> None:
        """Join ``herald.ws`` and start listening (must run on the event loop)."""
        loop = asyncio.get_running_loop()
        self.pushes = Pushes(self, loop)
        ws_push.register_local_gateway(self.member_id, self.pushes.deliver)
        if self._push_rpc:
            self._push_server = RPCServer(self.conf, self.conf.rpc.ws_topic, self.member_id,
                                          [PushEndpoint(self.pushes)])
            await loop.run_in_executor(None, self._push_server.start)
        self._coordinator = await loop.run_in_executor(None, self._join_group)
        self._membership = asyncio.create_task(self._keep_membership())
        opts = self.conf.ws_gateway
        sockets = tornado.netutil.bind_sockets(opts.port, address=opts.bind)
        self.port = sockets[0].getsockname()[1]
        # idle_connection_timeout also bounds how long a connection may take
        # to send its request headers (the websocket handshake).
        self._server = tornado.httpserver.HTTPServer(
            self.make_app(), idle_connection_timeout=opts.handshake_timeout)
        self._server.add_sockets(sockets)
        LOG.info("ws-gateway %s listening on %s:%s", self.member_id, opts.bind, self.port)

    def _join_group(self) -> tooz_coordination.CoordinationDriver:
        coordinator = coordination.start_coordinator(self.conf, self.member_id)
        try:
            coordinator.join_group_create(_GROUP)
        except tooz_coordination.MemberAlreadyExist:
            pass
        LOG.info("joined tooz group %s as %s", coordination.WS_GROUP, self.member_id)
        return coordinator

    async def _keep_membership(self) -> None:
        # A gateway whose heartbeat lapsed (tooz backend stalled past the
        # membership timeout) is deleted from herald.ws by the next worker
        # that lists it, and the workers then drop its subscribers' pushes as
        # "gateway gone"; tooz never adds it back, so rejoin here.
        loop = asyncio.get_running_loop()
        while not self.stopping:
            await asyncio.sleep(self.conf.coordination.heartbeat_interval)
            coordinator = self._coordinator
            if coordinator is None or self.stopping:
                continue
            try:
                rejoined = await loop.run_in_executor(
                    None, coordination.ensure_member, coordinator, coordination.WS_GROUP,
                    self.member_id)
            except Exception as exc:  # the backend may still be down; next round
                LOG.debug("tooz membership check failed: %s", exc)
                continue
            if rejoined:
                LOG.warning("ws-gateway %s had been dropped from %s; joined again",
                            self.member_id, coordination.WS_GROUP)

    async def stop(self) -> None:
        """Graceful stop: see the module docstring."""
        if self.stopping:
            return
        self.stopping = True
        if self._membership is not None:
            self._membership.cancel()
        timeout = self.conf.ws_gateway.shutdown_timeout
        if self._server is not None:
            listeners.stop_accepting(self._server)
        # Long polls answer now with what they have (not at their deadline).
        wakeups.HUB.release(self)
        if self.inflight:
            LOG.info("waiting for %d in-flight requests", len(self.inflight))
            await asyncio.wait(set(self.inflight), timeout=timeout or None)
        connections = list(self.connections)
        await asyncio.gather(*(c.drain(min(timeout, 2.0)) for c in connections))
        for connection in connections:
            connection.going_away()
        # Give the close handshakes a moment; Tornado aborts stragglers itself.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.pushes is not None:
            await self.pushes.wait_cleanups(2.0)
        ws_push.unregister_local_gateway(self.member_id)
        if self._push_server is not None:
            server, self._push_server = self._push_server, None
            await loop.run_in_executor(None, server.stop)
        await loop.run_in_executor(None, self._leave_group)
        LOG.info("ws-gateway %s stopped", self.member_id)

    def _leave_group(self) -> None:
        coordinator, self._coordinator = self._coordinator, None
        if coordinator is None:
            return
        try:
            coordinator.leave_group(_GROUP).get()
        except tooz_coordination.ToozError as exc:
            LOG.warning("could not leave tooz group %s: %s", coordination.WS_GROUP, exc)
        finally:
            coordinator.stop()

    def live_gateways(self) -> list[str]:
        """Member ids of the gateways in ``herald.ws`` (blocking: tooz)."""
        if self._coordinator is None:
            return []
        members = self._coordinator.get_members(_GROUP).get()
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def health(self) -> dict[str, Any]:
        """Detailed health: this gateway, the live gateways, storage reachability."""
        loop = asyncio.get_running_loop()
        report: dict[str, Any] = {
            "gateway": self.member_id,
            "connections": len(self.connections),
            "inflight_requests": len(self.inflight),
            "stopping": self.stopping,
        }
        try:
            report["gateways"] = await loop.run_in_executor(None, self.live_gateways)
        except Exception as exc:  # coordination trouble is reported, not raised
            report["gateways"] = None
            report["coordination_error"] = str(exc)
        try:
            report["storage_reachable"] = bool(
                await self.storage.ping(RequestContext(project_id="")))
        except Exception as exc:
            report["storage_reachable"] = False
            report["storage_error"] = getattr(exc, "description", None) or str(exc)
        return report

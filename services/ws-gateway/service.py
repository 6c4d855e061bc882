"""The WebSocket gateway service: Tornado listener, tooz membership, lifecycle.

``WSGatewayService(conf, storage, member_id)`` serves the websocket API on
``[ws_gateway] bind/port`` (any path upgrades; ``GET /health`` without an
upgrade is the detailed health report), joins the tooz group ``herald.ws``
under its member id with a heartbeat. Its lifecycle is the one of every
service (``herald.common.lifecycle``); on ``stop(grace)`` it:

1. stops accepting connections; frames arriving afterwards are ignored;
2. waits up to ``grace`` (default ``shutdown_timeout``, which covers a
   storage call's timeout) for in-flight requests and lets their replies
   reach the sockets; those still running then are answered 503 (their
   storage calls are abandoned);
3. closes every connection with 1001 (going away), which deletes their
   connection subscriptions and releases their ``release_on_close`` claims;
4. stops taking pushes, leaves the group and stops the coordinator, its
   wake-up listener and its caller.

``kill()`` skips the waits: in-flight requests are cancelled and every
connection is aborted.

What it owns: built without a ``storage`` (the ``herald ws-gateway``
process) it creates its storage caller (``OsloCaller``) and its listener of
long-poll wake-ups, and starts and stops them. Its long polls wait on
``self.waiters``, the hub of its ``LocalBus`` (``local=``, shared with a
worker of the same process, or its own). Pushes for websocket subscribers
arrive in-process through that bus's gateways (embedded mode) and, with
``push_rpc``, as oslo.messaging casts to topic ``[rpc] ws_topic`` under
this gateway's member id.

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

from herald.common import coordination, lifecycle, listeners
from herald.common import health as probes
from herald.common.context import RequestContext
from herald.common.rpc import wakeups
from herald.common.rpc.local_bus import LocalBus
from herald.common.rpc.server import RPCServer
from herald.common.rpc.storage_api import StorageAPI
from herald.common.rpc.storage_link import StorageLink
from herald.ws_gateway import webconsole
from herald.ws_gateway.claim_release import ClaimReleases
from herald.ws_gateway.connection import Connection
from herald.ws_gateway.dispatch import Dispatcher
from herald.ws_gateway.push import PushEndpoint, Pushes

LOG = logging.getLogger(__name__)

_GROUP = coordination.WS_GROUP.encode()


class WSGatewayService:
    def __init__(self, conf: cfg.ConfigOpts, storage: StorageAPI | None = None,
                 member_id: str | None = None, push_rpc: bool = False, *,
                 local: LocalBus | None = None) -> None:
        self.conf = conf
        self.member_id = member_id or coordination.new_member_id()
        self.local = local if local is not None else LocalBus()
        #: The long polls of this gateway wait here (``waiting()`` counts them).
        self.waiters: wakeups.WaiterHub = self.local.waiters
        # Without a storage given, this process talks to the workers itself.
        self._link = StorageLink(conf, self.member_id, self.waiters, storage)
        self.storage = storage = self._link.storage
        self.dispatcher = Dispatcher(storage, conf)
        self.connections: set[Connection] = set()
        #: The same connections by id: a broadcast names thousands of them.
        self.connections_by_id: dict[str, Connection] = {}
        self.inflight: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.port: int | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._coordinator: tooz_coordination.CoordinationDriver | None = None
        self._push_rpc = push_rpc
        self._push_server: RPCServer | None = None
        self.pushes: Pushes | None = None
        #: Releases the ``release_on_close`` claims of closed connections.
        self.claim_releases = ClaimReleases(self)
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
        self._link.start()
        self.pushes = Pushes(self, loop)
        self.local.gateways.register(self.member_id, self.pushes.deliver,
                                     self.pushes.broadcast)
        if self._push_rpc:
            self._push_server = RPCServer(self.conf, self.conf.rpc.ws_topic, self.member_id,
                                          [PushEndpoint(self.pushes)],
                                          nonces=self.local.nonces)
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

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: see the module docstring."""
        if self.stopping:
            return
        self.stopping = True
        if self._membership is not None:
            self._membership.cancel()
        timeout = (self._link.drain_seconds(self.conf.ws_gateway.shutdown_timeout)
                   if grace is None else grace)
        if self._server is not None:
            listeners.stop_accepting(self._server)
        # Long polls answer now with what they have (not at their deadline).
        self.waiters.release(self)
        if self.inflight:
            LOG.info("waiting for %d in-flight requests", len(self.inflight))
            await asyncio.wait(set(self.inflight), timeout=timeout or None)
        if self.inflight:
            LOG.warning("drain deadline (%.1f s): answering the %d request(s) still in "
                        "flight 503", timeout, len(self.inflight))
            self._link.abandon()
            await asyncio.wait(set(self.inflight), timeout=1.0)
        for task in list(self.inflight):
            task.cancel()  # what waits on anything else answers 503 (Connection._serve)
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=1.0)
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
        await self.claim_releases.wait(2.0)
        await self._release(drain=True)
        LOG.info("ws-gateway %s stopped", self.member_id)

    async def kill(self) -> None:
        """Stop now: cancel the requests in flight, abort every connection."""
        already = self.stopping
        self.stopping = True
        if self._membership is not None:
            self._membership.cancel()
        if self._server is not None and not already:
            self._server.stop()
        self.waiters.release(self)
        for task in list(self.inflight):
            task.cancel()
        for connection in list(self.connections):
            connection.abort()
        await self._release(drain=False)
        LOG.info("ws-gateway %s killed", self.member_id)

    async def _release(self, drain: bool) -> None:
        """Stop taking pushes, leave the group, stop what this gateway owns."""
        self.local.gateways.unregister(self.member_id)
        if self._push_server is not None:
            server, self._push_server = self._push_server, None
            await lifecycle.on_thread(server.stop if drain else server.kill, "push-server-stop")
        await lifecycle.on_thread(self._leave_group, "ws-leave-group")
        await self._link.stop()

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

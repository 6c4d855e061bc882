"""Notifications pushed to websocket subscribers (websocket.md §6).

A storage worker reaches the gateway holding subscribed connections either
in-process (the ``LocalGateways`` of the ``LocalBus`` the worker and the
gateway share, embedded mode) or by an oslo.messaging cast to topic
``[rpc] ws_topic`` with ``server=<gateway member id>``, served by
``PushEndpoint`` on the RPC server's threads. Each frame is bare -- the
notification payload itself, no response envelope -- in the frame kind of
the connection's last successful ``subscription_create``.

* ``Pushes.broadcast`` (how posts notify their websocket subscribers, one
  call per post and gateway): returns at once; on the loop, each payload is
  serialized and framed once per frame kind (JSON text, msgpack binary;
  ``framing``) and the same bytes are written to every named connection
  (``Connection.send_framed``), without waiting for any of them: a
  connection whose outbound queue is full is closed by the connection's
  back-pressure rule (1008), and the others are not delayed. Broadcasts
  that arrive while the loop is busy are taken together, consecutive ones
  to the same connections merged into one write each. Ids of connections
  this gateway does not hold (closed meanwhile) get their subscriptions
  deleted.
* ``Pushes.deliver`` / ``deliver_many`` (one payload per connection: the
  outbox rows of a previous release, test-fire): waits while the
  connection's queue is full, pacing the pushing thread.

Also: when a connection that created connection subscriptions closes, they
are deleted in storage. This module does not decode requests or know the
actions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

import oslo_messaging

from herald.common.context import RequestContext, set_current_request_id
from herald.common.rpc.ws_push import PUSH_API_VERSION
from herald.ws_gateway import codec, framing

if TYPE_CHECKING:
    from herald.ws_gateway.connection import Connection
    from herald.ws_gateway.service import WSGatewayService

LOG = logging.getLogger(__name__)


class Pushes:
    """The gateway's side of pushes; thread-safe entry point ``deliver``."""

    def __init__(self, gateway: WSGatewayService, loop: asyncio.AbstractEventLoop) -> None:
        self._gateway = gateway
        self._loop = loop
        self._cleanups: set[asyncio.Task[Any]] = set()
        #: Connections whose subscriptions are being deleted now.
        self._forgetting: set[str] = set()
        #: Broadcasts handed over by other threads, not yet on the loop.
        self._pending: list[tuple[list[str], list[Any]]] = []
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False

    def _find(self, connection_id: str) -> Connection | None:
        return self._gateway.connections_by_id.get(connection_id)

    def broadcast(self, connection_ids: list[str], payloads: list[Any]) -> None:
        """Queue every payload, in order, on each connection (any thread;
        returns at once, the work is done on the loop)."""
        with self._pending_lock:
            self._pending.append((connection_ids, payloads))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._broadcast_pending)
        except RuntimeError:  # the loop is closed: the gateway stopped, its connections too
            with self._pending_lock:
                self._pending.clear()
                self._drain_scheduled = False
            LOG.debug("broadcast to %d connection(s) after the gateway stopped",
                      len(connection_ids))

    def _broadcast_pending(self) -> None:
        """On the loop: every broadcast handed over since the last run. Runs
        of consecutive broadcasts to the same connections (posts in quick
        succession to one queue) are merged, so each connection gets their
        frames with one write."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
            self._drain_scheduled = False
        merged: list[tuple[list[str], list[Any]]] = []
        for connection_ids, payloads in pending:
            if merged and merged[-1][0] == connection_ids:
                merged[-1][1].extend(payloads)
            else:
                merged.append((connection_ids, list(payloads)))
        for connection_ids, payloads in merged:
            self._broadcast(connection_ids, payloads)

    def _broadcast(self, connection_ids: list[str], payloads: list[Any]) -> None:
        # The frames by kind (binary or not), built at first use: once per
        # format, whatever the number of connections (``framing``).
        wires: dict[bool, bytes] = {}
        unknown: list[str] = []
        count = len(payloads)
        for connection_id in connection_ids:
            connection = self._find(connection_id)
            if connection is None:
                unknown.append(connection_id)
                continue
            binary = bool(getattr(connection, "push_binary", False))
            wire = wires.get(binary)
            if wire is None:
                wire = wires[binary] = framing.frames(
                    [codec.encode(p, binary) for p in payloads], binary)
            # Never waits: a full queue closes this connection (1008) and
            # the broadcast goes on to the next one.
            connection.send_framed(wire, count, binary)
        for connection_id in unknown:
            # Closed before its clean-up reached storage (or the clean-up
            # failed): its subscriptions go now, as a push to it would fail.
            if connection_id not in self._forgetting:
                self._schedule_forget(connection_id)

    def deliver(self, connection_id: str, payload: Any) -> bool:
        """Queue ``payload`` for the connection; False if it is not ours (any
        thread but the loop's).

        Waits while the connection's outbound queue is full (at most its
        ``write_timeout``): the calling RPC thread is the back-pressure that
        paces a burst of pushes, which then wait in the broker instead of
        overflowing the queue of a client that reads normally."""
        return self.deliver_many([(connection_id, payload)])[0]

    def deliver_many(self, pushes: list[tuple[str, Any]]) -> list[bool]:
        """``deliver`` for several ``(connection_id, payload)``, queued in
        order with one hop onto the loop; False for each not ours."""
        ours = [self._find(connection_id) is not None for connection_id, _ in pushes]
        wanted = [push for push, mine in zip(pushes, ours, strict=True) if mine]
        if wanted:
            queued = asyncio.run_coroutine_threadsafe(self._send_all(wanted), self._loop)
            try:
                # Bounded: the loop may be stopping and never run it.
                queued.result(self._gateway.conf.ws_gateway.write_timeout + 5.0)
            except Exception:  # loop stopped, connection gone: the pushes are lost
                LOG.debug("%d push(es) not queued", len(wanted), exc_info=True)
        return ours

    async def _send_all(self, pushes: list[tuple[str, Any]]) -> None:
        for connection_id, payload in pushes:
            await self._send(connection_id, payload)

    async def _send(self, connection_id: str, payload: Any) -> None:
        connection = self._find(connection_id)
        if connection is None:
            return
        await connection.wait_for_room()
        if connection.closed.is_set():
            return
        binary = bool(getattr(connection, "push_binary", False))
        connection.send(codec.encode(payload, binary), binary=binary)

    def connection_closed(self, connection: Connection) -> None:
        """On the loop: delete the subscriptions the connection created."""
        if not getattr(connection, "has_ws_subscriptions", False):
            return
        self._schedule_forget(connection.connection_id)

    def _schedule_forget(self, connection_id: str) -> None:
        self._forgetting.add(connection_id)
        task = asyncio.ensure_future(self._forget(connection_id))
        self._cleanups.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._cleanups.discard(task)
            self._forgetting.discard(connection_id)

        task.add_done_callback(done)

    async def _forget(self, connection_id: str) -> None:
        ctxt = RequestContext(project_id="")
        set_current_request_id(ctxt.request_id)
        try:
            count = await self._gateway.storage.subscription_delete_connection(
                ctxt, self._gateway.member_id, connection_id)
            LOG.info("ws connection %s closed: %d subscription(s) removed", connection_id,
                     count)
        except Exception as exc:  # the dispatcher removes them when a push fails
            LOG.warning("could not remove the subscriptions of ws connection %s: %s",
                        connection_id, getattr(exc, "description", exc))

    async def wait_cleanups(self, timeout: float) -> None:
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=timeout)


class PushEndpoint:
    """oslo.messaging endpoint of the ``push`` cast (runs on RPC threads)."""

    target = oslo_messaging.Target(version=PUSH_API_VERSION)

    def __init__(self, pushes: Pushes) -> None:
        self._pushes = pushes

    def push(self, ctxt: RequestContext, connection_id: str, payload: Any) -> bool:
        set_current_request_id(getattr(ctxt, "request_id", "-") or "-")
        delivered = self._pushes.deliver(connection_id, payload)
        if not delivered:
            LOG.info("push for unknown ws connection %s dropped", connection_id)
        return delivered

    def broadcast(self, ctxt: RequestContext, connection_ids: list[str],
                  payloads: list[Any]) -> None:
        """Every payload to each connection (push API 1.2; a cast, nothing
        comes back): ``Pushes.broadcast``."""
        set_current_request_id(getattr(ctxt, "request_id", "-") or "-")
        self._pushes.broadcast([str(c) for c in connection_ids], list(payloads))

    def push_batch(self, ctxt: RequestContext, pushes: list[dict[str, Any]]) -> list[bool]:
        """Several pushes (``connection_id``, ``payload``, ``request_id``
        each), queued in order (push API 1.1)."""
        delivered = self._pushes.deliver_many(
            [(str(push.get("connection_id", "")), push.get("payload")) for push in pushes])
        for push, ok in zip(pushes, delivered, strict=True):
            if not ok:
                set_current_request_id(str(push.get("request_id") or "-"))
                LOG.info("push for unknown ws connection %s dropped", push.get("connection_id"))
        return delivered

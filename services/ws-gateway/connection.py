"""One websocket connection: concurrent requests, bounded outbound queue.

Each request frame is handled in its own asyncio task, so a slow storage call
delays neither the other connections nor the other requests of this one;
replies go out in completion order (each echoes its request, which is how a
client matches them). At most ``max_inflight_requests`` run at once per
connection: at the limit ``on_message`` waits, and Tornado does not read the
next frame until it returns (TCP back-pressure on a client that floods).

Replies wait in a per-connection outbound queue written by one writer task,
one frame at a time, each write awaited. So Tornado's own stream buffer
holds at most one frame, and everything else that waits is counted here.
Broadcast pushes (``send_framed``) skip the queue when nothing waits in it:
their frames, built once for all connections, go straight to the socket,
and only what the socket does not take is left to the writer. A client
that stops reading fills its socket, the writer stalls, the queue grows;
when it exceeds ``outbound_queue_size`` frames or ``outbound_max_bytes``
bytes, or one write waits longer than ``write_timeout``, the gateway drops
the queue, logs one line and closes with **1008** (policy violation: the
peer broke the contract of reading its replies; 1011/1013 would blame the
server). Tornado aborts the TCP connection if the close handshake does not
finish within 5 s, so memory is released even when the peer never reads
again.

Frames larger than ``max_frame_size`` never reach this class: Tornado closes
with 1009 (message too big) while reading them.

This module does not decode, validate or route requests (``dispatch``) and
knows nothing of the process lifecycle (``service``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import tornado.websocket
from tornado.iostream import SSLIOStream, StreamClosedError

from herald.common import metrics
from herald.ws_gateway.origin import origin_allowed, refused, splittable

if TYPE_CHECKING:
    from herald.ws_gateway.service import WSGatewayService

LOG = logging.getLogger(__name__)

# Bound once: a frame costs one atomic add (herald.common.metrics).
_CONNECTIONS = metrics.WS_CONNECTIONS
_FRAMES_IN_JSON = metrics.child(metrics.WS_FRAMES, "in", "json")
_FRAMES_IN_MSGPACK = metrics.child(metrics.WS_FRAMES, "in", "msgpack")
_FRAMES_OUT_JSON = metrics.child(metrics.WS_FRAMES, "out", "json")
_FRAMES_OUT_MSGPACK = metrics.child(metrics.WS_FRAMES, "out", "msgpack")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008


class Connection(tornado.websocket.WebSocketHandler):
    """Tornado handler of one websocket; also serves ``GET /health`` without upgrade."""

    def initialize(self, gateway: WSGatewayService) -> None:
        self.gateway = gateway
        self.connection_id = uuid.uuid4().hex
        limits = gateway.conf.ws_gateway
        self._queue_size: int = limits.outbound_queue_size
        self._max_bytes: int = limits.outbound_max_bytes
        self._write_timeout: float = limits.write_timeout
        self._slots = asyncio.Semaphore(limits.max_inflight_requests)
        #: (data, binary, frames): a message for ``write_message`` (binary
        #: True/False) or frames framed already (binary None).
        self._outbox: collections.deque[tuple[str | bytes, bool | None, int]] = (
            collections.deque())
        self._queued_frames = 0
        self._pending_bytes = 0  # queued + being written
        #: The writer is writing (or waits for the socket): a frame sent now
        #: must queue behind it.
        self._busy = False
        #: What the socket did not take of a ``send_framed``, and its size.
        self._inflight: tuple[Awaitable[Any], int] | None = None
        self._wakeup = asyncio.Event()
        #: Set by the writer whenever a frame left the queue (``wait_for_room``).
        self._drained = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        #: Set once the connection closed: long polls of its requests stop.
        self.closed = asyncio.Event()
        #: (project, queue) of the claims registered with this connection
        #: (``release_on_close``), released when it closes (``claim_release``).
        self.claim_queues: set[tuple[str, str]] = set()

    # -- HTTP side ----------------------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> None:
        # Any path upgrades to a websocket (clients use "/"); a plain GET of
        # /health is the operator's detailed health check.
        if (self.request.headers.get("Upgrade", "").lower() != "websocket"
                and self.request.path == "/health"):
            report = await self.gateway.health()
            self.set_status(200 if report["storage_reachable"] else 503)
            self.set_header("Content-Type", "application/json")
            self.finish(report)
            return
        limit = self.gateway.conf.ws_gateway.max_connections
        if len(self.gateway.connections) >= limit:
            LOG.warning("refusing a websocket handshake from %s: %d connections open "
                        "(max_connections)", self.request.remote_ip, len(self.gateway.connections))
            self.set_status(503)
            self.finish({"error": "Too many connections; try again later."})
            return
        origin = self.request.headers.get("Origin")
        if origin is not None and not splittable(origin):
            refused(origin, self.request.headers.get("Host", ""))
            self.set_status(403)
            self.finish("Cross origin websockets not allowed")
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        # Only browsers send Origin; a page may talk to the gateway if it is
        # the gateway's own (/console) or listed in [ws_gateway]
        # allowed_origins. Without this any web site a person visits could
        # use their browser to reach a gateway on their machine or network.
        host = self.request.headers.get("Host", "")
        if origin_allowed(origin, host, self.gateway.conf.ws_gateway.allowed_origins):
            return True
        refused(origin, host)
        return False

    # -- websocket lifecycle -------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        if self.gateway.stopping:
            self.close(CLOSE_GOING_AWAY, "Gateway is shutting down.")
            return
        # Frames leave at once. With Nagle's algorithm on, a push that
        # followed another before the client's (delayed) ACK waited for it:
        # pushes at 200/s reached the subscriber ~17 ms (p50) after the
        # gateway wrote them, since a subscriber only listens and sends
        # nothing an ACK could ride on.
        self.set_nodelay(True)
        self.gateway.connections.add(self)
        self.gateway.connections_by_id[self.connection_id] = self
        _CONNECTIONS.inc()
        self._writer = asyncio.create_task(self._write_loop())
        LOG.info("ws connection %s opened from %s", self.connection_id, self.request.remote_ip)

    async def on_message(self, message: str | bytes) -> None:
        if metrics.ENABLED:
            (_FRAMES_IN_MSGPACK if isinstance(message, bytes) else _FRAMES_IN_JSON).inc()
        if self._closing or self.gateway.stopping:
            return  # a stopping gateway finishes what it has, takes nothing new
        # Waiting here stops Tornado from reading further frames (back-pressure).
        await self._slots.acquire()
        if self._closing:
            self._slots.release()
            return
        task = asyncio.create_task(self._serve(message))
        self.gateway.inflight.add(task)
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self.gateway.inflight.discard(task)
        self._slots.release()

    async def _serve(self, message: str | bytes) -> None:
        try:
            reply = await self.gateway.dispatcher.handle(message, connection=self)
        except asyncio.CancelledError:
            if not self.gateway.stopping:
                raise
            # The stopping gateway's drain deadline: an answer, not silence.
            reply = self.gateway.dispatcher.stopping_reply(message)
        except Exception:  # dispatch turns errors into replies; this is a bug
            LOG.exception("ws connection %s: request crashed", self.connection_id)
            return
        self.send(reply, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        self._closing = True
        self.closed.set()
        if self in self.gateway.connections:  # opened (not refused while stopping)
            _CONNECTIONS.dec()
        self.gateway.connections.discard(self)
        self.gateway.connections_by_id.pop(self.connection_id, None)
        self._drop_outbox()
        if self._writer is not None:
            self._writer.cancel()
        if self.gateway.pushes is not None:
            self.gateway.pushes.connection_closed(self)
        self.gateway.claim_releases.connection_closed(self)
        LOG.info("ws connection %s closed (code %s)", self.connection_id, self.close_code)

    # -- outbound queue -------------------------------------------------------

    def send(self, frame: str | bytes, binary: bool) -> bool:
        """Queue one frame; False if the connection is gone or was just dropped."""
        return self._enqueue(frame, binary, 1)

    def send_framed(self, wire: bytes, count: int, binary: bool) -> bool:
        """Send ``count`` frames already framed in ``wire`` (a broadcast's,
        ``herald.ws_gateway.framing``); False if the connection is gone or
        was just dropped.

        When nothing waits before them (the usual case for a subscriber that
        reads), they go to the socket at once with one ``send``: no task
        switch and no copy per connection, which is what lets one gateway
        push to thousands of subscribers within a few milliseconds. What the
        socket does not take waits in Tornado's stream buffer, and counts
        here (bytes, ``write_timeout``) like a queued frame. Otherwise they
        are queued behind the frames before them, in order."""
        if self._closing:
            return False
        if self._outbox or self._busy:
            queued = self._enqueue(wire, None, count)
            if queued:
                self._count_out(count, binary)
            return queued
        stream = self.ws_connection.stream if self.ws_connection is not None else None
        if stream is None or stream.closed():
            return False
        self._count_out(count, binary)
        sent = 0
        if not stream.writing() and not isinstance(stream, SSLIOStream):
            # Tornado's own buffer is empty, so nothing is overtaken; this is
            # what IOStream.write would do first, minus its future.
            try:
                sent = stream.socket.send(wire)
            except BlockingIOError:
                sent = 0
            except OSError:  # reset by the peer: Tornado closes the stream
                sent = 0
            if sent == len(wire):
                return True
        try:
            future = stream.write(memoryview(wire)[sent:] if sent else wire)
        except StreamClosedError:
            return False
        if not future.done():
            # The socket is full: the writer waits for the rest (timeout
            # included) before it writes anything else.
            self._busy = True
            self._inflight = (future, len(wire) - sent)
            self._pending_bytes += len(wire) - sent
            self._wakeup.set()
        return True

    def _enqueue(self, data: str | bytes, binary: bool | None, count: int) -> bool:
        """Queue ``data``: a message Tornado frames (``binary`` True/False)
        or ``count`` frames framed already (``binary`` None)."""
        if self._closing:
            return False
        size = len(data)
        if self._queued_frames + count > self._queue_size or (
            self._pending_bytes and self._pending_bytes + size > self._max_bytes
        ):
            self.disconnect_slow_reader(
                f"{self._queued_frames} frames / {self._pending_bytes} bytes waiting")
            return False
        self._outbox.append((data, binary, count))
        self._queued_frames += count
        if binary is not None:
            self._count_out(count, binary)
        self._pending_bytes += size
        self._wakeup.set()
        return True

    @staticmethod
    def _count_out(count: int, binary: bool) -> None:
        if metrics.ENABLED:
            (_FRAMES_OUT_MSGPACK if binary else _FRAMES_OUT_JSON).inc(count)

    async def wait_for_room(self) -> None:
        """Until the queue holds fewer than ``outbound_queue_size`` frames, at
        most ``write_timeout`` (then ``send`` decides). For pushes: a backlog
        of notifications arrives as a burst of casts, faster than any client
        reads, and must be paced by the writer rather than taken for a
        client that stopped reading."""
        if self._closing or self._queued_frames < self._queue_size:
            # The usual case: no timer to arm and cancel (a twentieth of the
            # gateway's CPU per push at 200 pushes/s).
            return
        try:
            async with asyncio.timeout(self._write_timeout):
                while not self._closing and self._queued_frames >= self._queue_size:
                    self._drained.clear()
                    await self._drained.wait()
        except TimeoutError:
            pass

    @property
    def pending(self) -> tuple[int, int]:
        """(frames queued, bytes queued or being written) — for tests and health."""
        return self._queued_frames, self._pending_bytes

    async def _write_loop(self) -> None:
        # Exits on its own once the connection is closing (``_drop_outbox``
        # wakes it), not only through cancellation.
        while not self._closing:
            if self._inflight is not None:
                # The rest of a ``send_framed`` the socket did not take.
                future, size = self._inflight
                await self._write(future, size)
                self._inflight = None
                continue
            if not self._outbox:
                self._busy = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._busy = True
            data, binary, count = self._outbox.popleft()
            self._queued_frames -= count
            self._drained.set()
            if binary is None:
                assert self.ws_connection is not None
                write = self.ws_connection.stream.write(data)
            else:
                write = self.write_message(data, binary=binary)
            await self._write(write, len(data))

    async def _write(self, write: Awaitable[Any], size: int) -> None:
        """Wait until ``write`` was handed to the socket, at most ``write_timeout``."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that races with the write completing.
            async with asyncio.timeout(self._write_timeout):
                await write
        except (tornado.websocket.WebSocketClosedError, StreamClosedError):
            self._closing = True
        except TimeoutError:
            self.disconnect_slow_reader(f"one frame not accepted in {self._write_timeout:g}s")
        finally:
            self._pending_bytes = max(0, self._pending_bytes - size)

    def disconnect_slow_reader(self, detail: str) -> None:
        if self._closing:
            return
        self._closing = True
        LOG.warning("ws connection %s: client is not reading its replies (%s); "
                    "closing with %d", self.connection_id, detail, CLOSE_POLICY_VIOLATION)
        self._drop_outbox()
        self.close(CLOSE_POLICY_VIOLATION, "Client is not reading its replies.")

    def _drop_outbox(self) -> None:
        self._outbox.clear()
        self._queued_frames = 0
        self._pending_bytes = 0
        self._wakeup.set()
        self._drained.set()

    # -- shutdown ---------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Wait until every queued reply was handed to the socket (or timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending_bytes and not self._closing and loop.time() < deadline:
            await asyncio.sleep(0.01)

    def going_away(self) -> None:
        self._closing = True
        self.close(CLOSE_GOING_AWAY, "Gateway is shutting down.")

    def abort(self) -> None:
        """Drop the connection at once, without a close handshake (kill):
        queued replies are lost; ``on_close`` still runs its clean-up."""
        self._closing = True
        self._drop_outbox()
        stream = self.ws_connection.stream if self.ws_connection is not None else None
        if stream is not None:
            stream.close()
        else:
            self.close(CLOSE_GOING_AWAY, "Gateway is shutting down.")

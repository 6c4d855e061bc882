"""A lean websocket subscriber for the broadcast phases: frames timed where they arrive.

The broadcast phases (``bench.fanout``) hold 1,000 to 10,000 subscribed
connections in the bench's one process, which must take every frame the
gateways push -- 10,000 and more a second -- without becoming the thing it
measures. aiohttp's websocket client wakes a task for every frame; with
10,000 subscribers the bench spent a whole core on it and fell seconds
behind the gateways. This subscriber is an asyncio ``BufferedProtocol``
that parses the server's frames (RFC 6455 §5.2) where they arrive, in
``data_received``, decodes each text frame's JSON and records its latency
from the send time its body carries (``roles.find_sent_time``). A
broadcast's frame is the same bytes on every connection, so it is decoded
once (``_SENT_TIMES``): decoding it 10,000 times was 44 ms of the bench's
core per post, which the 10,000-subscriber phase measured as Herald's
latency.

It speaks what a subscriber needs and no more: the opening handshake
(checked), masked text frames out (``call``: one request, its reply),
pushes in, a pong for a ping, a close answered. It must not be used to test
the gateway's protocol handling; the tests use real clients.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
import urllib.parse
import uuid
from typing import Any

from bench import roles

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA

#: The send time of each push frame seen lately, by its exact bytes. A
#: broadcast's frame is the same bytes on every connection, so it is parsed
#: once, not 10,000 times (a ~1 KiB body took 4.4 us to parse, 0.7 us to
#: look up). Only pushes go in: a reply is told apart before.
_SENT_TIMES: dict[bytes, float] = {}
_SENT_TIMES_KEPT = 256


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame (clients must mask, RFC 6455 §5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return header + mask + masked


#: Where every subscriber's socket reads land (``Subscriber.get_buffer``):
#: one buffer for all, as each read is consumed before the loop does the
#: next. A plain ``Protocol`` gets a new ``bytes`` from ``recv(256 KiB)``
#: per read, and glibc maps and unmaps an allocation that large each time:
#: 20 us a read against 4 us for ``recv_into`` here, 10,000 reads a post.
_READ_BUFFER = memoryview(bytearray(64 * 1024))


class Subscriber(asyncio.BufferedProtocol):
    """One connection; every pushed text frame's latency goes to ``latencies``."""

    #: The slowest frame of each post (by its send time), over every subscriber.
    slowest: dict[float, float] = {}

    def __init__(self, url: str, latencies: list[float]) -> None:
        self._url = urllib.parse.urlsplit(url)
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._latencies = latencies
        self._buffer = bytearray()
        self._opened = False
        self._reply: asyncio.Future[dict[str, Any]] | None = None
        self._transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": roles.PROJECT}
        self.frames = 0
        self.errors = 0

    @classmethod
    async def connect(cls, url: str, latencies: list[float]) -> Subscriber:
        split = urllib.parse.urlsplit(url)
        _, subscriber = await asyncio.get_running_loop().create_connection(
            lambda: cls(url, latencies), split.hostname, split.port or 80)
        await asyncio.wait_for(asyncio.shield(subscriber.handshake), 30)
        return subscriber

    async def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its reply (pushes meanwhile are timed)."""
        assert self._transport is not None and self._reply is None
        self._reply = asyncio.get_running_loop().create_future()
        request = {"action": action, "headers": self.headers, "body": body}
        self._transport.write(masked_frame(_TEXT, json.dumps(request).encode()))
        try:
            return await asyncio.wait_for(asyncio.shield(self._reply), 30)
        finally:
            self._reply = None

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(masked_frame(_CLOSE, (1000).to_bytes(2, "big")))
            self._transport.close()

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        host = self._url.netloc
        path = self._url.path or "/"
        transport.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.handshake, self._reply, self.closed):
            if future is not None and not future.done():
                if future is self.closed:
                    future.set_result(None)
                else:
                    future.set_exception(ConnectionError(f"websocket closed: {exc}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_READ_BUFFER[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Frames in ``data`` (a view of ``_READ_BUFFER`` when called by
        ``buffer_updated``): parsed in place, unless a frame began
        in an earlier read; only an incomplete frame's bytes are kept."""
        buffer = self._buffer
        if buffer or not self._opened:
            buffer += data
            if not self._opened and not self._open(buffer):
                return
            data = bytes(buffer)
            buffer.clear()
        now = time.time()  # one clock read for what arrived together
        pos, size = 0, len(data)
        while size - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
            if size - pos < head + length:
                break
            if second & 0x80 or not first & 0x80:  # a server neither masks nor fragments here
                self.errors += 1
            self._frame(first & 0x0F, data[pos + head:pos + head + length], now)
            pos += head + length
        if pos < size:
            buffer += data[pos:]

    def _open(self, buffer: bytearray) -> bool:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[:end + 4]
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        accept = base64.b64encode(hashlib.sha1(self._key.encode() + _GUID).digest()).decode()
        if not head[0].startswith("HTTP/1.1 101") or fields.get("sec-websocket-accept") != accept:
            self.handshake.set_exception(ConnectionError(f"handshake refused: {head[0]}"))
            assert self._transport is not None
            self._transport.close()
            return False
        self._opened = True
        self.handshake.set_result(None)
        return True

    def _frame(self, opcode: int, payload: bytes | memoryview, now: float) -> None:
        """One frame; ``payload`` may be a view of the shared read buffer,
        so what is kept is copied (``bytes``)."""
        assert self._transport is not None
        if opcode == _TEXT:
            payload = bytes(payload)
            sent = _SENT_TIMES.get(payload)
            if sent is None:
                document = json.loads(payload)
                if self._reply is not None and isinstance(document, dict) and "request" in document:
                    if not self._reply.done():
                        self._reply.set_result(document)
                    return
                sent = roles.find_sent_time(document)
                if sent is not None:
                    if len(_SENT_TIMES) >= _SENT_TIMES_KEPT:
                        _SENT_TIMES.clear()
                    _SENT_TIMES[payload] = sent
            if sent is not None:
                latency = now - sent
                self._latencies.append(latency)
                self.frames += 1
                if latency > self.slowest.get(sent, 0.0):
                    self.slowest[sent] = latency
        elif opcode == _PING:
            self._transport.write(masked_frame(_PONG, bytes(payload)))
        elif opcode == _CLOSE:
            self.close()
        elif opcode != _PONG:
            self.errors += 1

"""The bench's lean websocket subscriber (``bench.ws_subscriber``) reads
frames as a client must: every push timed once, replies told apart from
pushes, malformed frames counted. The broadcast phases' figures rest on it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench import ws_subscriber
from bench.ws_subscriber import Subscriber


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _server_frame(payload: bytes, opcode: int = 0x1, final: bool = True) -> bytes:
    first = (0x80 if final else 0) | opcode
    if len(payload) < 126:
        return bytes((first, len(payload))) + payload
    return bytes((first, 126)) + len(payload).to_bytes(2, "big") + payload


def _push(sent: float, seq: int) -> bytes:
    return json.dumps({"body": {"ttl": 600, "body": {"t": sent, "seq": seq, "pad": "x" * 300},
                                "queue_name": "q"}}).encode()


def _feed(subscriber: Subscriber, data: bytes) -> None:
    """One socket read, as the event loop hands it over (``recv_into``)."""
    buffer = subscriber.get_buffer(-1)
    buffer[:len(data)] = data
    subscriber.buffer_updated(len(data))


async def _opened() -> tuple[Subscriber, list[float]]:
    latencies: list[float] = []
    subscriber = Subscriber("ws://127.0.0.1:9/", latencies)
    subscriber._opened = True  # the handshake is not what these tests are about
    subscriber.connection_made(_Transport())
    return subscriber, latencies


def test_identical_pushes_on_many_connections_are_each_timed() -> None:
    async def run() -> None:
        ws_subscriber._SENT_TIMES.clear()
        sent = time.time() - 0.05
        frame = _server_frame(_push(sent, 1))
        subscribers = [await _opened() for _ in range(3)]
        for subscriber, _ in subscribers:
            # Split across reads, as TCP may deliver it.
            _feed(subscriber, frame[:7])
            _feed(subscriber, frame[7:] + _server_frame(_push(sent + 0.01, 2)))
            _feed(subscriber, frame[:2])  # a later push's first bytes
            _feed(subscriber, frame[2:])
        for subscriber, latencies in subscribers:
            assert subscriber.frames == 3 and subscriber.errors == 0
            assert 0.03 < latencies[0] < 5 and latencies[1] < latencies[0]
            assert latencies[2] >= latencies[0]
        # The same frame decoded once for all three connections.
        assert list(ws_subscriber._SENT_TIMES.values()) == [sent, sent + 0.01]

    asyncio.run(run())


def test_a_reply_is_not_a_push_even_after_a_push_of_the_same_body() -> None:
    async def run() -> None:
        ws_subscriber._SENT_TIMES.clear()
        subscriber, latencies = await _opened()
        reply_task = asyncio.ensure_future(subscriber.call("message_get", {}))
        await asyncio.sleep(0)
        reply = {"request": {"action": "message_get"}, "headers": {"status": 200},
                 "body": {"body": {"t": time.time(), "seq": 1}}}
        _feed(subscriber, _server_frame(json.dumps(reply).encode()))
        assert (await reply_task)["headers"]["status"] == 200
        assert latencies == [] and subscriber.frames == 0

    asyncio.run(run())


def test_masked_or_fragmented_server_frames_are_counted_as_errors() -> None:
    async def run() -> None:
        subscriber, _ = await _opened()
        subscriber.data_received(_server_frame(_push(time.time(), 1), final=False))
        masked = bytearray(_server_frame(b"{}"))
        masked[1] |= 0x80
        subscriber.data_received(bytes(masked))
        assert subscriber.errors == 2

    asyncio.run(run())

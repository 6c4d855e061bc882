"""How a gateway writes broadcasts (``herald.ws_gateway.push``, ``framing``,
``Connection.send_framed``): frames built once for every connection and
written straight to the socket, the rest left to the connection's writer.

Subscribers are real websocket clients (aiohttp, websocket-client), which
parse every frame the gateway builds.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import websocket

from .conftest import ws_url
from .test_broadcast import Subscriber, post, session_without_limit, stalled_subscriber, wait_for


def test_frames_of_every_length_reach_json_and_msgpack_subscribers(
        harness, gateway, project: str) -> None:
    """Payloads whose frames take each of RFC 6455's three length forms (7
    bits, 16 bits, 64 bits) arrive whole, in both frame kinds."""
    bodies: list[Any] = [1, "a" * 200, "b" * 70_000, {"nested": ["c" * 65_600]}]

    async def scenario() -> list[Subscriber]:
        async with session_without_limit() as session:
            subscribers = [await Subscriber.connect(session, ws_url(gateway), project,
                                                    "lengths", binary=binary)
                           for binary in (False, True)]
            await asyncio.to_thread(post, harness, project, "lengths", *bodies)
            await wait_for(lambda: all(len(s.frames) >= len(bodies) for s in subscribers),
                           15, "every push on both connections")
            for subscriber in subscribers:
                await subscriber.close()
            return subscribers

    for subscriber in asyncio.run(scenario()):
        assert [(document["body"], binary) for document, binary, _ in subscriber.frames] == [
            (body, subscriber.binary) for body in bodies]


def test_a_reader_that_pauses_gets_every_frame_in_order(harness, project: str) -> None:
    """A subscriber that stops reading while megabytes are pushed to it: what
    its socket does not take waits (in Tornado's buffer, then the queue),
    and once it reads again every frame arrives, in post order."""
    gateway = harness.gateway(outbound_queue_size=64, write_timeout=30.0)
    reader = stalled_subscriber(ws_url(gateway), project, ["pause"])
    connection = next(c for c in list(gateway.connections))
    counted: list[int] = []  # what herald_ws_frames_total is told, queued or not
    connection._count_out = lambda count, binary: counted.append(count)
    pad = "p" * 200_000
    posts = 40
    backlog = []
    for n in range(posts):
        post(harness, project, "pause", {"n": n, "pad": pad})
        backlog.append(connection.pending)
    # The socket filled up: later frames waited in the gateway.
    assert any(queued_bytes for _, queued_bytes in backlog), backlog
    reader.settimeout(30)
    seen = []
    while len(seen) < posts:
        opcode, data = reader.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        seen.append(json.loads(data)["body"]["n"])
    assert seen == list(range(posts))
    assert connection.pending == (0, 0)
    assert sum(counted) == posts
    reader.close()


def test_broadcasts_handed_over_together_go_out_in_one_write(
        harness, gateway, project: str) -> None:
    """Broadcasts to the same connections that arrive while the gateway's
    loop is busy are written together, once per connection, in order."""
    assert gateway.pushes is not None
    loop = gateway.pushes._loop

    async def scenario() -> tuple[list[Any], list[int]]:
        before = set(gateway.connections)
        async with session_without_limit() as session:
            subscribers = [await Subscriber.connect(session, ws_url(gateway), project,
                                                    "merged", binary=binary)
                           for binary in (False, True)]
            ours = [c for c in list(gateway.connections) if c not in before]
            writes: list[int] = []
            for connection in ours:
                send_framed = connection.send_framed

                def counting(wire: bytes, count: int, binary: bool, send=send_framed) -> bool:
                    writes.append(count)
                    return send(wire, count, binary)

                connection.send_framed = counting
            ids = [c.connection_id for c in ours]

            def hand_over() -> None:
                busy = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop)
                busy.result(5)
                loop.call_soon_threadsafe(time.sleep, 0.3)  # the loop is busy
                for n in range(10):
                    gateway.pushes.broadcast(ids, [{"n": n}])

            await asyncio.to_thread(hand_over)
            await wait_for(lambda: all(len(s.frames) >= 10 for s in subscribers), 15,
                           "ten pushes on both connections")
            frames = [[document for document, _, _ in s.frames] for s in subscribers]
            for subscriber in subscribers:
                await subscriber.close()
            return frames, writes

    frames, writes = asyncio.run(scenario())
    assert frames == [[{"n": n} for n in range(10)]] * 2
    assert writes == [10, 10]

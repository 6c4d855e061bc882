"""Websocket subscribers are notified by one broadcast per post and gateway
(docs/websocket-subscriptions.md), in the embedded stack (pushes take the
in-process path; tests/e2e/test_ws_fanout.py takes RabbitMQ).

Many subscribers are aiohttp websockets on an event loop of the test's own;
a stalled reader is a raw websocket-client connection nobody reads from.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import msgpack
import websocket

from herald.common.context import RequestContext
from herald.testing.polling import wait_until, wait_until_async

from .client import WSClient
from .conftest import ws_url


class Subscriber:
    """One aiohttp websocket subscribed to a queue, recording each push with
    its arrival time (``time.time()``, as posts stamp their bodies)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.frames: list[tuple[Any, bool, float]] = []
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str, project: str,
                      queue: str | None, binary: bool = False) -> Subscriber:
        """Open a connection, subscribed to ``queue`` unless None (``subscribe``)."""
        subscriber = cls(await session.ws_connect(url, max_msg_size=0), binary)
        if queue is not None:
            await subscriber.subscribe(project, queue)
        return subscriber

    async def subscribe(self, project: str, queue: str) -> None:
        request = {"action": "subscription_create",
                   "headers": {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project},
                   "body": {"queue_name": queue, "ttl": 3600}}
        if self.binary:
            await self.ws.send_bytes(msgpack.packb(request, use_bin_type=True))
        else:
            await self.ws.send_str(json.dumps(request))
        reply = await self.ws.receive(timeout=30)
        document = (msgpack.unpackb(reply.data) if reply.type == aiohttp.WSMsgType.BINARY
                    else json.loads(reply.data))
        assert document["headers"]["status"] == 201, document
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            now = time.time()
            if frame.type == aiohttp.WSMsgType.BINARY:
                self.frames.append((msgpack.unpackb(frame.data), True, now))
            elif frame.type == aiohttp.WSMsgType.TEXT:
                self.frames.append((json.loads(frame.data), False, now))

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


def session_without_limit() -> aiohttp.ClientSession:
    # aiohttp's default of 100 connections would hold the 101st websocket.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    await wait_until_async(predicate, timeout, interval=0.02, what=what)


def spy_broadcasts(harness, gateway) -> list[tuple[list[str], list[Any]]]:
    """Record what reaches ``gateway`` as broadcasts (then let it through)."""
    seen: list[tuple[list[str], list[Any]]] = []

    def broadcast(connection_ids: list[str], payloads: list[Any]) -> None:
        seen.append((list(connection_ids), payloads))
        gateway.pushes.broadcast(connection_ids, payloads)

    harness.local.gateways.register(gateway.member_id, gateway.pushes.deliver, broadcast)
    return seen


def post(harness, project: str, queue: str, *bodies: Any) -> None:
    ctxt = RequestContext(project_id=project, client_id=str(uuid.uuid4()))
    harness.run(harness.storage.message_post(
        ctxt, queue, [{"body": body, "ttl": 60} for body in bodies], 100))


def test_a_post_is_one_broadcast_per_gateway_reaching_every_subscriber(
        harness, gateway, project: str) -> None:
    other = harness.gateway()
    seen = {gw.member_id: spy_broadcasts(harness, gw) for gw in (gateway, other)}
    per_gateway = 30

    async def scenario() -> list[Subscriber]:
        async with session_without_limit() as session:
            subscribers = await asyncio.gather(*(
                Subscriber.connect(session, ws_url(gw), project, "fan", binary=i % 2 == 1)
                for gw in (gateway, other) for i in range(per_gateway)))
            # A webhook subscriber keeps its durable outbox rows.
            hook = WSClient(ws_url(gateway), project)
            status, _ = hook.status_body("subscription_create", {
                "queue_name": "fan", "subscriber": "http://127.0.0.1:9/hook"})
            hook.close()
            assert status == 201
            await asyncio.to_thread(post, harness, project, "fan", {"n": 1}, "two", 3)
            # A last post: once it arrived, everything before it did, once.
            await asyncio.to_thread(post, harness, project, "fan", "end")
            await wait_for(lambda: all(len(s.frames) >= 4 for s in subscribers), 15,
                           "four pushes on every connection")
            for subscriber in subscribers:
                await subscriber.close()
            return subscribers

    subscribers = asyncio.run(scenario())
    expected = [{"ttl": 60, "body": body, "Message_Type": "Notification", "queue_name": "fan"}
                for body in ({"n": 1}, "two", 3, "end")]
    for subscriber in subscribers:
        assert [(document, binary) for document, binary, _ in subscriber.frames] == [
            (document, subscriber.binary) for document in expected]
    # One broadcast per gateway and post, carrying the post's payloads once
    # and the gateway's thirty connections.
    for gw in (gateway, other):
        assert len(seen[gw.member_id]) == 2
        connection_ids, payloads = seen[gw.member_id][0]
        assert len(connection_ids) == per_gateway == len(set(connection_ids))
        assert payloads == expected[:3]
        assert seen[gw.member_id][1] == (connection_ids, expected[3:])
    # No outbox row for the sixty websocket subscribers; four for the webhook.
    rows = harness.outbox_rows(project, "fan")
    assert len(rows) == 4
    assert {row.subscriber for row in rows} == {"http://127.0.0.1:9/hook"}


def test_posts_reach_a_subscriber_in_order(harness, gateway, project: str) -> None:
    """Posts to one queue, each of several messages, arrive in commit order."""

    async def scenario() -> list[Any]:
        async with session_without_limit() as session:
            subscriber = await Subscriber.connect(session, ws_url(gateway), project, "seq")

            def posts() -> None:
                for n in range(0, 40, 4):
                    post(harness, project, "seq", n, n + 1, n + 2, n + 3)

            await asyncio.to_thread(posts)
            await wait_for(lambda: len(subscriber.frames) >= 40, 15, "forty pushes")
            await subscriber.close()
            return [document["body"] for document, _, _ in subscriber.frames]

    assert asyncio.run(scenario()) == list(range(40))


def test_a_broadcast_to_a_closed_connection_deletes_its_subscription(
        harness, gateway, project: str) -> None:
    """A connection closed before its clean-up reached storage: the next
    broadcast naming it finds it gone and deletes its subscriptions."""
    with WSClient(ws_url(gateway), project) as watcher:
        assert watcher.status_body("subscription_create", {"queue_name": "gone"})[0] == 201
        _, listed = watcher.status_body("subscription_list", {"queue_name": "gone"})
        assert len(listed["subscriptions"]) == 1
        assert gateway.pushes is not None
        gateway.pushes.broadcast(["no-such-connection"], [{"n": 1}])
        # The watcher's own subscription stays: only the unknown one is forgotten.
        harness.run(harness.storage.subscription_create(
            RequestContext(project_id=project), "gone", None, 3600, {},
            send_confirmation=False,
            connection={"gateway_id": gateway.member_id,
                        "connection_id": "no-such-connection"}))
        gateway.pushes.broadcast(["no-such-connection"], [{"n": 2}])

        def count() -> int:
            _, listed = watcher.status_body("subscription_list", {"queue_name": "gone"})
            return len(listed["subscriptions"])

        wait_until(lambda: count() == 1, 10, what="the closed connection's subscription gone")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def count_subscriptions(harness, project: str, queue: str) -> int:
    ctxt = RequestContext(project_id=project)
    count, marker = 0, None
    while True:
        page = harness.run(harness.storage.subscription_list(ctxt, queue, marker, 100))
        count += len(page["subscriptions"])
        if len(page["subscriptions"]) < 100:
            return count
        marker = page["subscriptions"][-1]["id"]


def stalled_subscriber(url: str, project: str, queues: list[str]) -> websocket.WebSocket:
    """A connection subscribed to ``queues`` whose owner never reads."""
    ws = websocket.create_connection(url, timeout=15)
    for queue in queues:
        ws.send(json.dumps({"action": "subscription_create",
                            "headers": {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project},
                            "body": {"queue_name": queue, "ttl": 3600}}))
        assert json.loads(ws.recv())["headers"]["status"] == 201
    return ws


def closed_by_peer(ws: websocket.WebSocket) -> bool:
    """Whether the gateway closed the connection (reads what arrived: only
    once the stalled part of the test is over)."""
    raw = ws.sock
    raw.setblocking(False)
    try:
        while True:
            if not raw.recv(1 << 20):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_one_stalled_reader_does_not_delay_the_others(harness, project: str) -> None:
    """The same posts to 1,000 subscribers, first alone, then with one more
    subscriber that never reads: the others' p99 from post to frame stays
    where it was, and the stalled one is closed (1008, its queue was full)
    and unsubscribed. A push that waited for room on the stalled connection
    would hold every connection after it for ``write_timeout`` (5 s here)."""
    readers = 1000
    gateway = harness.gateway(outbound_queue_size=4, write_timeout=5.0)
    pad = "x" * 1000
    posts_per_run = 20

    def run_posts(tag: str) -> None:
        for n in range(posts_per_run):
            post(harness, project, "stall", {"t": time.time(), "run": tag, "n": n, "pad": pad})
            time.sleep(0.05)

    def latencies(subscribers: list[Subscriber], tag: str) -> list[float]:
        return [arrived - document["body"]["t"] for s in subscribers
                for document, _, arrived in s.frames if document["body"]["run"] == tag]

    async def scenario() -> tuple[list[float], list[float]]:
        async with session_without_limit() as session:
            subscribers = list(await asyncio.gather(*(
                Subscriber.connect(session, ws_url(gateway), project, "stall")
                for _ in range(readers))))
            readers_ids = {c.connection_id for c in list(gateway.connections)}
            await asyncio.to_thread(run_posts, "alone")
            await wait_for(lambda: all(len(s.frames) >= posts_per_run for s in subscribers),
                           30, "every push of the first run")
            stalled = stalled_subscriber(ws_url(gateway), project, ["stall", "fill"])
            assert count_subscriptions(harness, project, "stall") == readers + 1
            # Only the stalled reader gets these: once the socket buffers are
            # full, its frames wait in the gateway's queue (up to 4 here).
            big = "y" * 200_000

            def fill() -> None:
                for _ in range(100):
                    connection = next(c for c in list(gateway.connections)
                                      if c.connection_id not in readers_ids)
                    if connection.pending[0]:
                        return
                    post(harness, project, "fill", big)
                    time.sleep(0.02)
                raise AssertionError("the stalled reader's buffers never filled")

            await asyncio.to_thread(fill)
            await asyncio.to_thread(run_posts, "stalled")
            await wait_for(lambda: all(len(s.frames) >= 2 * posts_per_run
                                       for s in subscribers), 30,
                           "every push of the second run")
            # Closed by the gateway (its subscription deleted) while still unread.
            await wait_for(lambda: count_subscriptions(harness, project, "stall") == readers,
                           20, "the stalled reader's subscription gone")
            assert closed_by_peer(stalled)
            stalled.sock.close()
            for subscriber in subscribers:
                await subscriber.close()
            return latencies(subscribers, "alone"), latencies(subscribers, "stalled")

    alone, with_stalled = asyncio.run(scenario())
    assert len(alone) == len(with_stalled) == readers * posts_per_run
    p99_alone, p99_stalled = percentile(alone, 0.99), percentile(with_stalled, 0.99)
    print(f"p99 post->frame of {readers} readers: {p99_alone * 1000:.0f} ms alone, "
          f"{p99_stalled * 1000:.0f} ms with a stalled reader")
    # Generous: the machine is shared. A broadcast held by the stalled reader costs >= 5 s.
    assert p99_stalled < max(3 * p99_alone, p99_alone + 1.0), (p99_alone, p99_stalled)

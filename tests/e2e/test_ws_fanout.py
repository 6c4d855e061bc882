"""A broadcast to 1,000 websocket subscribers over two gateways and two storage workers.

Topology: ``herald db upgrade``, two ``herald storage`` workers, one API and
two ``herald ws-gateway`` processes over RabbitMQ, PostgreSQL and Redis
(membership timeout 3 s). 500 connections on each gateway subscribe to one
queue (docs/websocket-subscriptions.md):

* subscribing the 1,000 takes under 5 s (asserted with a 2x margin);
* a REST post reaches every one of them (one broadcast cast per gateway);
* gateway 2 is SIGKILLed in the middle of a stream of posts: gateway 1's
  subscribers still get every post, in order, exactly once; gateway 2's
  got an in-order prefix without duplicates, and their subscriptions are
  deleted once tooz lets the gateway go;
* closing gateway 1's connections removes their subscriptions at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from herald.testing import polling
from herald.testing.topology import Backends, Topology, ws_url
from tests.e2e.flows import Rest
from tests.e2e.test_notifications import fast_failover_env
from tests.ws.test_broadcast import Subscriber, session_without_limit, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

PER_GATEWAY = 500
STREAM = 30


def count_subscriptions(rest: Rest, queue: str) -> int:
    """Every page of the queue's REST subscription listing."""
    count, path = 0, f"/v2/queues/{queue}/subscriptions?limit=20"
    while True:
        response = rest.request("GET", path)
        assert response.status_code == 200, response.text
        page = response.json()
        count += len(page["subscriptions"])
        following = [link["href"] for link in page.get("links", []) if link["rel"] == "next"]
        if len(page["subscriptions"]) < 20 or not following:
            return count
        path = following[0]


def bodies(subscriber: Subscriber) -> list[Any]:
    return [document["body"] for document, _, _ in subscriber.frames]


def test_a_thousand_subscribers_over_two_gateways(topology: Topology,
                                                  backends: Backends) -> None:
    env = fast_failover_env(backends)
    api = topology.distributed(storage_workers=2, apis=1, env=env)[2]
    gw1 = topology.ws_gateway("ws-1", env=env)
    gw2 = topology.ws_gateway("ws-2", env=env)
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    rest = Rest(api.url, project)
    queue = "broadcast"

    def stream(after_tenth: threading.Event) -> None:
        for n in range(STREAM):
            assert rest.post(queue, {"n": n}, ttl=300).status_code == 201
            if n == 9:
                after_tenth.set()
            time.sleep(0.03)

    async def scenario() -> None:
        async with session_without_limit() as session:
            # Connections first: subscribing is what is timed.
            urls = [ws_url(gw1)] * PER_GATEWAY + [ws_url(gw2)] * PER_GATEWAY
            started = time.monotonic()
            subscribers = list(await asyncio.gather(*(
                Subscriber.connect(session, url, project, None, binary=i % 2 == 1)
                for i, url in enumerate(urls))))
            opened = time.monotonic() - started
            started = time.monotonic()
            await asyncio.gather(*(s.subscribe(project, queue) for s in subscribers))
            took = time.monotonic() - started
            print(f"1,000 connections opened in {opened:.2f} s, subscribed in {took:.2f} s")
            # The target is 5 s (issue 27: 3.0 s measured on a quiet moment);
            # twice that here, as the machine running the suite is shared.
            assert took < 10.0
            assert count_subscriptions(rest, queue) == 2 * PER_GATEWAY
            on_gw1, on_gw2 = subscribers[:PER_GATEWAY], subscribers[PER_GATEWAY:]

            assert rest.post(queue, {"n": "first"}, ttl=300).status_code == 201
            await wait_for(lambda: all(len(s.frames) == 1 for s in subscribers), 30,
                           "the first post on every connection")
            assert all(bodies(s) == [{"n": "first"}] for s in subscribers)

            # Gateway 2 dies in the middle of a stream of posts.
            after_tenth = threading.Event()
            poster = threading.Thread(target=stream, args=(after_tenth,))
            poster.start()
            await asyncio.to_thread(after_tenth.wait, 30)
            gw2.kill()
            await asyncio.to_thread(poster.join, 60)
            expected = [{"n": "first"}, *({"n": n} for n in range(STREAM))]
            await wait_for(lambda: all(len(s.frames) == len(expected) for s in on_gw1), 30,
                           "every post of the stream on gateway 1")
            await wait_for(lambda: all(s.ws.closed for s in on_gw2), 30,
                           "gateway 2's connections dropped")
            assert all(bodies(s) == expected for s in on_gw1)
            for subscriber in on_gw2:  # at most once, in order: a prefix
                got = bodies(subscriber)
                assert got == expected[:len(got)], got

            # Its subscriptions go once tooz lets it go (3 s here), at the
            # next post to the queue.
            def dead_gateway_forgotten() -> bool:
                assert rest.post(queue, {"n": "probe"}, ttl=300).status_code == 201
                return count_subscriptions(rest, queue) == PER_GATEWAY

            await asyncio.to_thread(polling.wait_until, dead_gateway_forgotten, 30,
                                    interval=1.0, what="gateway 2's subscriptions deleted")

            # Closing a connection removes its subscription at once.
            started = time.monotonic()
            for subscriber in on_gw1:
                await subscriber.close()
            await asyncio.to_thread(polling.wait_until,
                                    lambda: count_subscriptions(rest, queue) == 0, 10,
                                    what="gateway 1's subscriptions deleted on close")
            print(f"500 closed connections unsubscribed in {time.monotonic() - started:.2f} s")

    asyncio.run(scenario())

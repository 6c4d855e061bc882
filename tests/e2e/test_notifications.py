"""Notifications end to end: processes over RabbitMQ, PostgreSQL and Redis.

* Two storage workers dispatch ~200 pending webhook notifications; the one
  that is dispatching is SIGKILLed mid-way. The survivor takes its share
  over (tooz ring after the membership timeout, expired leases, overdue
  rows): every notification arrives, duplicates are allowed and counted.
* A webhook subscribed to a queue that was posted to before gets every
  later post, from either worker.
* Two websocket clients subscribed on gateway 1 receive the pushes for
  messages posted over REST and over gateway 2 (cast to topic ``herald-ws``
  with ``server=<gateway 1>``; the two pushes of a post as one
  ``push_batch`` cast), and their subscriptions disappear when they close.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from herald.testing import polling
from herald.testing.topology import Backends, Topology, ws_url
from tests.e2e.flows import Rest
from tests.webhook_receiver import LocalWebhookServer
from tests.ws.client import WSClient

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]


class Receiver(LocalWebhookServer):
    """Counts notifications by their body's ``n``; answers slowly on purpose."""

    def __init__(self, delay: float = 0.02) -> None:
        self.seen: collections.Counter[int] = collections.Counter()
        self.lock = threading.Lock()
        self.delay = delay
        super().__init__("/hook")

    def answer(self, path: str, body: bytes, request: Any) -> int:
        time.sleep(self.delay)  # keeps the dispatcher busy long enough to be killed
        with self.lock:
            self.seen[json.loads(body)["body"]["n"]] += 1
        return 200

    def distinct(self) -> int:
        with self.lock:
            return len(self.seen)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def fast_failover_env(backends: Backends) -> dict[str, str]:
    return {
        # A killed worker leaves the tooz group after 3 s instead of 30.
        "OS_COORDINATION__BACKEND_URL": backends.coordination_url + "&membership_timeout=3",
        "OS_RPC__WS_TOPIC": backends.rpc_topic + "-ws",
        "OS_NOTIFICATION__LEASE_SECONDS": "4",
        "OS_NOTIFICATION__DELIVERY_TIMEOUT": "2",
        "OS_NOTIFICATION__TAKEOVER_AFTER": "8",
        "OS_NOTIFICATION__DISPATCH_INTERVAL": "0.2",
        "OS_NOTIFICATION__RETRY_DELAY_SCALE": "0.01",
    }


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    polling.wait_until(predicate, timeout, what=what)


def test_sigkill_of_the_dispatching_worker_loses_nothing(topology: Topology,
                                                         backends: Backends,
                                                         receiver: Receiver) -> None:
    env = fast_failover_env(backends)
    services = topology.distributed(storage_workers=2, apis=1, env=env)
    workers, api = services[:2], services[2]
    rest = Rest(api.url)
    resp = rest.request("POST", "/v2/queues/q/subscriptions",
                        json={"subscriber": receiver.url})
    assert resp.status_code == 201, resp.text
    total = 200
    for start in range(0, total, 10):
        resp = rest.post("q", *({"n": n} for n in range(start, start + 10)), ttl=600)
        assert resp.status_code == 201, resp.text

    wait_until(lambda: receiver.distinct() >= 20, 30, "the first deliveries")
    delivered = {w.name: w.log().count("delivered notification") for w in workers}
    victim = max(workers, key=lambda w: delivered[w.name])
    survivor = next(w for w in workers if w is not victim)
    before = receiver.distinct()
    victim.kill()  # SIGKILL: no lease release, no group leave
    assert before < total, "everything was delivered before the kill; slow the receiver"

    wait_until(lambda: receiver.distinct() == total, 60,
               f"all {total} notifications (have {receiver.distinct()})")
    duplicates = sum(count - 1 for count in receiver.seen.values())
    print(f"delivered {total} notifications, {duplicates} duplicate(s); "
          f"{before} before killing {victim.name}")
    assert set(receiver.seen) == set(range(total))
    assert "delivered notification" in survivor.log()
    # the subscription's statistics count every delivery that was recorded
    sid = rest.request("GET", "/v2/queues/q/subscriptions").json()["subscriptions"][0]["id"]
    wait_until(lambda: rest.request("GET", f"/v2/queues/q/subscriptions/{sid}")
               .json()["delivery"]["pending"] == 0, 20, "no pending delivery")


def test_a_webhook_subscribed_after_posts_gets_every_later_post(topology: Topology,
                                                                backends: Backends) -> None:
    """Posts to a queue without subscribers skip the notifier: the workers'
    statement checks there are none. Once a webhook subscribes, each later
    post reaches it, whichever worker takes it."""
    services = topology.distributed(storage_workers=2, apis=1,
                                    env=fast_failover_env(backends))
    rest = Rest(services[2].url)
    receiver = Receiver(delay=0.0)
    try:
        for n in range(-20, 0):  # both workers post to the queue the short way
            assert rest.post("late", {"n": n}, ttl=600).status_code == 201
        resp = rest.request("POST", "/v2/queues/late/subscriptions",
                            json={"subscriber": receiver.url})
        assert resp.status_code == 201, resp.text
        for n in range(20):
            assert rest.post("late", {"n": n}, ttl=600).status_code == 201
        wait_until(lambda: receiver.distinct() >= 20, 20,
                   f"20 notifications (have {sorted(receiver.seen)})")
        assert set(receiver.seen) == set(range(20))
    finally:
        receiver.close()


def test_websocket_subscriber_gets_rest_and_gateway_posts(topology: Topology,
                                                          backends: Backends) -> None:
    env = fast_failover_env(backends)
    services = topology.distributed(storage_workers=2, apis=1, env=env)
    api = services[2]
    gw1 = topology.ws_gateway("ws-1", env=env)
    gw2 = topology.ws_gateway("ws-2", env=env)
    project = f"e2e-{uuid.uuid4().hex[:8]}"
    rest = Rest(api.url, project)
    # Two subscribers on gateway 1: each post makes two pushes there, which
    # the dispatcher sends as one push_batch cast.
    listeners = [WSClient(ws_url(gw1), project), WSClient(ws_url(gw1), project)]
    poster = WSClient(ws_url(gw2), project, binary=True)
    try:
        for listener in listeners:
            status, body = listener.status_body("subscription_create",
                                                {"queue_name": "kitkat"})
            assert status == 201, body
        sid = body["subscription_id"]
        subscriber = rest.request("GET", f"/v2/queues/kitkat/subscriptions/{sid}").json()
        assert subscriber["subscriber"].startswith("http://")

        assert rest.post("kitkat", {"via": "rest"}, ttl=120).status_code == 201
        for listener in listeners:
            assert listener.recv() == ({"ttl": 120, "body": {"via": "rest"},
                                        "Message_Type": "Notification",
                                        "queue_name": "kitkat"}, False)
        status, body = poster.status_body("message_post", {
            "queue_name": "kitkat", "messages": [{"body": {"via": "gateway 2"}, "ttl": 60}]})
        assert status == 201, body
        for listener in listeners:
            assert listener.recv() == ({"ttl": 60, "body": {"via": "gateway 2"},
                                        "Message_Type": "Notification",
                                        "queue_name": "kitkat"}, False)
    finally:
        for listener in listeners:
            listener.close()
        poster.close()
    wait_until(lambda: rest.request("GET", "/v2/queues/kitkat/subscriptions")
               .json()["subscriptions"] == [], 15, "the connection's subscription to go")

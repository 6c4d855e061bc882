"""Filter policies, message groups and release with several storage workers (issue 23 §1, §2, §4).

Two storage workers behind one REST API over RabbitMQ, on PostgreSQL:
posts, claims and releases go to either worker.

* A webhook subscribed with the issue's filter policy receives only the
  matching messages, whichever worker ran each post's notifier stage; the
  subscription's statistics count exactly those deliveries, none pending.
* A message released with a delay is claimable by no claim, on either
  worker, before the delay is over, and is claimed again after it.
* The issue's message-group example holds with claims spread over both
  workers: a claimed group is held from every other claim, whichever worker
  runs it, until its message is deleted.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from herald.testing import polling
from herald.testing.topology import Topology
from tests.e2e.flows import Rest
from tests.webhook_receiver import LocalWebhookServer

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]


class Receiver(LocalWebhookServer):
    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.lock = threading.Lock()
        super().__init__("/hook")

    def answer(self, path: str, body: bytes, request: Any) -> int:
        with self.lock:
            self.bodies.append(json.loads(body)["body"])
        return 200


def test_filter_policies_and_releases_on_two_storage_workers(topology: Topology) -> None:
    """One topology for both flows: starting one costs more than either."""
    env = {"OS_NOTIFICATION__DISPATCH_INTERVAL": "0.2",
           "OS_NOTIFICATION__RETRY_DELAY_SCALE": "0.01"}
    services = topology.distributed(storage_workers=2, apis=1, env=env)
    rest = Rest(services[2].url)
    a_filter_policy_holds_on_every_worker(rest)
    a_released_message_waits_its_delay_on_every_worker(rest)
    a_held_group_is_held_on_every_worker(rest)


def a_held_group_is_held_on_every_worker(rest: Rest) -> None:
    posted = rest.request("POST", "/v2/queues/ordered/messages", json={"messages": [
        {"body": "g1-a", "ttl": 300, "group": "g1"}, {"body": "g1-b", "ttl": 300, "group": "g1"},
        {"body": "g2-a", "ttl": 300, "group": "g2"}]})
    assert posted.status_code == 201, posted.text

    def claim(limit: int) -> list[Any]:
        resp = rest.request("POST", f"/v2/queues/ordered/claims?limit={limit}",
                            json={"ttl": 60, "grace": 60})
        if resp.status_code == 204:
            return []
        assert resp.status_code == 201, resp.text
        return resp.json()["messages"]

    first = claim(1)
    assert [m["body"] for m in first] == ["g1-a"]
    # Several claims in a row, spread over both workers: g1 stays held.
    assert [m["body"] for m in claim(10)] == ["g2-a"]
    for _ in range(4):
        assert claim(10) == []
    deleted = rest.request("DELETE", first[0]["href"])
    assert deleted.status_code == 204, deleted.text
    assert [m["body"] for m in claim(10)] == ["g1-b"]


def a_filter_policy_holds_on_every_worker(rest: Rest) -> None:
    receiver = Receiver()
    try:
        resp = rest.request("POST", "/v2/queues/shop/subscriptions", json={
            "subscriber": receiver.url,
            "options": {"filter": {"kind": ["order"], "amount": [{"numeric": [">=", 100]}]}}})
        assert resp.status_code == 201, resp.text
        sid = resp.json()["subscription_id"]
        for round_ in range(3):  # one message per post: the posts spread over both workers
            for body in ({"kind": "order", "amount": 150, "round": round_},
                         {"kind": "order", "amount": 5}, {"kind": "refund", "amount": 500}):
                assert rest.post("shop", body, ttl=600).status_code == 201

        def delivery() -> dict[str, Any]:
            return rest.request("GET", f"/v2/queues/shop/subscriptions/{sid}").json()["delivery"]

        polling.wait_until(lambda: delivery()["delivered"] >= 3 and delivery()["pending"] == 0,
                           30, what="the matching messages delivered")
        assert (delivery()["delivered"], delivery()["attempts"]) == (3, 3)
        with receiver.lock:
            assert sorted(b["round"] for b in receiver.bodies) == [0, 1, 2]
            assert all(b["kind"] == "order" and b["amount"] == 150 for b in receiver.bodies)
    finally:
        receiver.close()


def a_released_message_waits_its_delay_on_every_worker(rest: Rest) -> None:
    assert rest.post("jobs", {"job": 1}, ttl=600).status_code == 201
    resp = rest.request("POST", "/v2/queues/jobs/claims", json={"ttl": 60, "grace": 60})
    assert resp.status_code == 201, resp.text
    href = resp.json()["messages"][0]["href"]
    message_path, _, claim_query = href.partition("?")
    delay = 3
    resp = rest.request("POST", f"{message_path}/release?{claim_query}", json={"delay": delay})
    assert resp.status_code == 204, resp.text
    released = time.monotonic()
    # Claims sent at once reach both workers (round robin); none gets it.
    for _ in range(4):
        resp = rest.request("POST", "/v2/queues/jobs/claims", json={"ttl": 60})
        assert resp.status_code == 204 or time.monotonic() - released >= delay, resp.text
    assert time.monotonic() - released < delay, "the early claims were too slow to mean much"

    claimed: list[Any] = []

    def claim() -> bool:
        resp = rest.request("POST", "/v2/queues/jobs/claims", json={"ttl": 60})
        if resp.status_code == 201:
            claimed.extend(resp.json()["messages"])
        return bool(claimed)

    polling.wait_until(claim, 15, what="the released message claimed again")
    assert time.monotonic() - released >= delay - 0.5  # storage clocks may differ a little
    assert [m["body"] for m in claimed] == [{"job": 1}]
    assert claimed[0]["href"].split("?")[0] == message_path

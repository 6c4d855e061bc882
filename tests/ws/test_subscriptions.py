"""Websocket subscription actions and pushes to connection subscribers
(websocket.md §5 "Subscriptions", §6), over JSON and msgpack frames.

Gateways and the storage worker (with its outbox dispatcher) share one
process here, so pushes take the in-process path; the RabbitMQ path is
covered by tests/e2e/test_notifications.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from herald.common.context import RequestContext
from herald.testing.polling import wait_until

from .client import WSClient
from .conftest import ws_url


@pytest.fixture(params=["json", "msgpack"])
def client(request: pytest.FixtureRequest, gateway, project: str) -> Iterator[WSClient]:
    c = WSClient(ws_url(gateway), project, binary=request.param == "msgpack")
    yield c
    c.close()


def post(client: WSClient, queue: str, *bodies) -> list[str]:
    status, body = client.status_body(
        "message_post", {"queue_name": queue,
                         "messages": [{"body": b, "ttl": 120} for b in bodies]})
    assert status == 201, body
    return body["message_ids"]


def test_create_list_get_delete(client: WSClient) -> None:
    status, body = client.status_body("subscription_create", {
        "queue_name": "q", "subscriber": "http://h/x", "options": {"a": 1}, "ttl": 600})
    assert status == 201 and body["message"] == "Subscription q created."
    sid, secret = body["subscription_id"], body["signing_secret"]
    assert client.status_body("subscription_create", {
        "queue_name": "q", "subscriber": "http://h/x"}) == (409, "Subscription q not created.")
    status, listed = client.status_body("subscription_list", {"queue_name": "q"})
    assert status == 200 and [s["id"] for s in listed["subscriptions"]] == [sid]
    status, got = client.status_body("subscription_get", {"queue_name": "q",
                                                          "subscription_id": sid})
    assert status == 200
    assert got == {"id": sid, "source": "q", "subscriber": "http://h/x", "ttl": 600,
                   "age": got["age"], "options": {"a": 1, "signing_secret": secret},
                   "confirmed": False}
    assert client.status_body("subscription_delete", {
        "queue_name": "q", "subscription_id": sid}) == (204, f"Subscription {sid} removed.")
    status, body = client.status_body("subscription_get", {"queue_name": "q",
                                                           "subscription_id": sid})
    assert status == 404 and body["exception"] == f"Subscription {sid} does not exist"


@pytest.mark.parametrize("body, text", [
    ({"queue_name": "q", "subscriber": "fake://x"}, "must be supported"),
    ({"queue_name": "q", "subscriber": "http://x", "ttl": 10}, "at least 60"),
    ({"queue_name": "q", "subscriber": "http://x",
      "options": {"_retry_policy": {"minimum_delay": 40}}}, "minimum_delay must less"),
    ({"queue_name": "bad name", "subscriber": "http://x"}, "Queue names may only contain"),
])
def test_create_validation(client: WSClient, body, text) -> None:
    status, reply = client.status_body("subscription_create", body)
    assert status == 400 and text in reply["exception"]


def test_list_limit_and_schema(client: WSClient) -> None:
    status, body = client.status_body("subscription_list", {"queue_name": "q", "limit": 21})
    assert status == 400
    assert client.status_body("subscription_create", {"queue_name": 1}) == (
        400, {"error": "Schema validation failed."})


def _recv_push(client: WSClient) -> tuple[dict, bool]:
    return client.recv()


def test_connection_subscriber_gets_pushes_from_any_gateway(harness, gateway,
                                                            project: str) -> None:
    other = harness.gateway()
    with WSClient(ws_url(gateway), project) as listener, \
            WSClient(ws_url(other), project, binary=True) as poster:
        status, body = listener.status_body("subscription_create", {"queue_name": "kitkat"})
        assert status == 201
        sid = body["subscription_id"]
        status, got = listener.status_body("subscription_get", {"queue_name": "kitkat",
                                                                "subscription_id": sid})
        assert got["subscriber"].startswith("http://")  # looks like an http subscription
        started = time.monotonic()
        post(poster, "kitkat", {"status": "disco queen"}, "second")
        frames = [_recv_push(listener), _recv_push(listener)]
        assert time.monotonic() - started < 2.0
        assert frames == [
            ({"ttl": 120, "body": {"status": "disco queen"}, "Message_Type": "Notification",
              "queue_name": "kitkat"}, False),
            ({"ttl": 120, "body": "second", "Message_Type": "Notification",
              "queue_name": "kitkat"}, False),
        ]
        # a post that does not come from a websocket (REST) is pushed as well
        ctxt = RequestContext(project_id=project, client_id="c1d2e3f4-0000-4000-8000-000000000000")
        harness.run(harness.storage.message_post(ctxt, "kitkat", [{"body": 3, "ttl": 60}], 10))
        assert _recv_push(listener) == ({"ttl": 60, "body": 3, "Message_Type": "Notification",
                                         "queue_name": "kitkat"}, False)


def test_msgpack_subscription_gets_binary_pushes(gateway, project: str) -> None:
    with WSClient(ws_url(gateway), project, binary=True) as listener, \
            WSClient(ws_url(gateway), project) as poster:
        assert listener.status_body("subscription_create", {"queue_name": "q"})[0] == 201
        post(poster, "q", {"k": "v"})
        assert _recv_push(listener) == ({"ttl": 120, "body": {"k": "v"},
                                         "Message_Type": "Notification", "queue_name": "q"},
                                        True)


def test_closing_the_connection_removes_its_subscriptions(gateway, project: str) -> None:
    with WSClient(ws_url(gateway), project) as watcher:
        listener = WSClient(ws_url(gateway), project)
        assert listener.status_body("subscription_create", {"queue_name": "q"})[0] == 201
        assert watcher.status_body("subscription_create", {
            "queue_name": "q", "subscriber": "http://h/keep"})[0] == 201
        listener.close()

        def subscribers() -> list[str]:
            _, listed = watcher.status_body("subscription_list", {"queue_name": "q"})
            return [s["subscriber"] for s in listed["subscriptions"]]

        wait_until(lambda: subscribers() == ["http://h/keep"], 5,
                   what="only the kept subscription listed")


def test_a_burst_of_pushes_is_paced_not_taken_for_a_slow_reader(harness, project: str) -> None:
    """A backlog of notifications arrives as a burst of push casts, many
    more than the outbound queue holds: the pushing threads wait for room,
    and a client that reads normally gets every one, in order."""
    small = harness.gateway(outbound_queue_size=4)
    with WSClient(ws_url(small), project) as listener:
        status, body = listener.status_body("subscription_create", {"queue_name": "burst"})
        assert status == 201
        _, got = listener.status_body("subscription_get", {
            "queue_name": "burst", "subscription_id": body["subscription_id"]})
        connection_id = got["subscriber"].rstrip("/").rsplit("/", 1)[-1]
        assert small.pushes is not None

        def burst() -> None:
            for i in range(40):
                assert small.pushes.deliver(connection_id, {"n": i})

        pusher = threading.Thread(target=burst)
        pusher.start()
        received = [listener.recv()[0]["n"] for _ in range(40)]
        pusher.join(10)
        assert received == list(range(40))
        status, _ = listener.status_body("subscription_list", {"queue_name": "burst"})
        assert status == 200  # still connected


def test_a_push_batch_reaches_each_connection_in_order(gateway, project: str) -> None:
    """push_batch (push API 1.1): one cast carries pushes for several
    connections of the gateway; each gets its own in order, and a push for a
    connection the gateway does not hold is reported and dropped alone."""
    from herald.common.context import RequestContext
    from herald.ws_gateway.push import PushEndpoint

    def connection_id(client: WSClient, queue: str) -> str:
        status, body = client.status_body("subscription_create", {"queue_name": queue})
        assert status == 201
        _, got = client.status_body("subscription_get", {
            "queue_name": queue, "subscription_id": body["subscription_id"]})
        return got["subscriber"].rstrip("/").rsplit("/", 1)[-1]

    with WSClient(ws_url(gateway), project) as first, WSClient(ws_url(gateway), project) as second:
        ids = [connection_id(first, "batch-a"), connection_id(second, "batch-b")]
        assert gateway.pushes is not None
        pushes = [{"connection_id": ids[i % 2], "payload": {"n": i}, "request_id": f"req-{i}"}
                  for i in range(6)]
        pushes.insert(3, {"connection_id": "not-ours", "payload": {"n": -1},
                          "request_id": "req-x"})
        delivered = PushEndpoint(gateway.pushes).push_batch(
            RequestContext(project_id=""), pushes=pushes)
        assert delivered == [True, True, True, False, True, True, True]
        assert [first.recv()[0]["n"] for _ in range(3)] == [0, 2, 4]
        assert [second.recv()[0]["n"] for _ in range(3)] == [1, 3, 5]


def test_a_filter_policy_selects_the_pushes_of_a_connection(harness, gateway,
                                                            project: str) -> None:
    """Issue 23 §1 over the websocket: a connection subscriber's
    ``options.filter`` is applied by the same notifier stage, so only the
    first of the issue's three messages is pushed; the next push is the
    next matching message."""
    example = {"kind": ["order"], "amount": [{"numeric": [">=", 100]}]}
    with WSClient(ws_url(gateway), project) as listener, \
            WSClient(ws_url(gateway), project) as poster:
        assert listener.status_body("subscription_create", {
            "queue_name": "q", "options": {"filter": example}})[0] == 201
        post(poster, "q", {"kind": "order", "amount": 150}, {"kind": "order", "amount": 5},
             {"kind": "refund", "amount": 500})
        # No outbox row for a connection (a broadcast): had the two others
        # been pushed, they would arrive before the next post's.
        post(poster, "q", {"kind": "order", "amount": 999})
        assert [_recv_push(listener)[0]["body"] for _ in range(2)] == [
            {"kind": "order", "amount": 150}, {"kind": "order", "amount": 999}]


@pytest.mark.parametrize("policy, words", [
    ({"amount": [{"numeric": [">=", "x"]}]}, ['key "amount"', '{"numeric": [">=", "x"]}']),
    ({"a": {"b": [{"nope": 1}]}}, ['key "a.b"', "unknown operator 'nope'"]),
])
def test_an_invalid_filter_policy_is_400(client: WSClient, policy, words) -> None:
    for subscriber in ({"subscriber": "http://h/x"}, {}):
        status, reply = client.status_body("subscription_create", {
            "queue_name": "q", "options": {"filter": policy}, **subscriber})
        assert status == 400 and all(w in reply["exception"] for w in words), reply

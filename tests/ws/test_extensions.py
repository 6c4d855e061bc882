"""Herald's websocket extensions: long polling (``wait`` in ``claim_create``
and ``message_list`` bodies) and idempotent posts (``idempotency_key`` in
``message_post``), in one module so they share one gateway harness.

Two gateways share one embedded storage worker: a long poll on one gateway
is woken by a post through the other. No sleeps and no stopwatch: the post
is sent once the long poll logged ``long poll parked``
(``herald.testing.log_events``), and the answer must come while the 20 s
deadline is far off (``WOKEN_WITHIN``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from herald.testing.log_events import LogEvents
from herald.testing.polling import wait_until
from herald.ws_gateway.service import WSGatewayService
from tests.ws.client import WSClient
from tests.ws.conftest import GatewayHarness, ws_url

# The longest wait there is; a woken poll answers within milliseconds, so
# half of it tells a wake-up from the deadline on any machine.
MAX_WAIT = 20
WOKEN_WITHIN = MAX_WAIT / 2


class Waiting:
    """A request run on a thread of its own, to hold a long poll open."""

    def __init__(self, request: Callable[[], Any]) -> None:
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, args=(request,))
        self._thread.start()

    def _run(self, request: Callable[[], Any]) -> None:
        self.result = request()

    def answered(self, timeout: float) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"no answer within {timeout} s"
        return self.result

    def is_alive(self) -> bool:
        return self._thread.is_alive()


def _post(url: str, project: str, queue: str) -> None:
    poster = WSClient(url, project)
    try:
        status, _ = poster.status_body("message_post", {
            "queue_name": queue, "messages": [{"body": "wake up", "ttl": 300}]})
        assert status == 201
    finally:
        poster.ws.close()


def _parked(events: LogEvents, project: str, queue: str) -> Callable[[], int]:
    return lambda: events.count("long poll parked", project=project, queue=queue)


def _wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    return bool(wait_until(predicate, timeout))


@pytest.mark.parametrize("binary", [False, True])
def test_claim_woken_by_a_post_through_another_gateway(harness: GatewayHarness,
                                                      gateway: WSGatewayService,
                                                      project: str, binary: bool) -> None:
    other = harness.gateway()
    consumer = WSClient(ws_url(gateway), project, binary=binary)
    try:
        with LogEvents() as events:
            waiting = Waiting(lambda: consumer.status_body(
                "claim_create", {"queue_name": "jobs", "wait": MAX_WAIT, "ttl": 60}))
            wait_until(_parked(events, project, "jobs"), what="the claim parked")
            assert waiting.is_alive()  # it did wait for the post
            _post(ws_url(other), project, "jobs")
            status, body = waiting.answered(WOKEN_WITHIN)
        assert status == 201, body
        assert [m["body"] for m in body["messages"]] == ["wake up"]
    finally:
        consumer.ws.close()


def test_list_woken_by_a_post(gateway: WSGatewayService, project: str) -> None:
    consumer = WSClient(ws_url(gateway), project)
    try:
        with LogEvents() as events:
            waiting = Waiting(lambda: consumer.status_body(
                "message_list", {"queue_name": "feed", "wait": MAX_WAIT}))
            wait_until(_parked(events, project, "feed"), what="the listing parked")
            _post(ws_url(gateway), project, "feed")
            status, body = waiting.answered(WOKEN_WITHIN)
        assert status == 200
        assert len(body["messages"]) == 1
    finally:
        consumer.ws.close()


def test_deadline_answers_empty(gateway: WSGatewayService, project: str) -> None:
    client = WSClient(ws_url(gateway), project)
    try:
        started = time.monotonic()
        assert client.status_body("claim_create", {"queue_name": "none", "wait": 1}) == (
            204, {"claim_id": None})
        assert 0.9 <= time.monotonic() - started < 2.5
        started = time.monotonic()
        assert client.status_body("message_list", {"queue_name": "none", "wait": 1}) == (
            200, {"messages": []})
        assert 0.9 <= time.monotonic() - started < 2.5
    finally:
        client.ws.close()


@pytest.mark.parametrize("action", ["claim_create", "message_list"])
def test_wait_validation(gateway: WSGatewayService, project: str, action: str) -> None:
    client = WSClient(ws_url(gateway), project)
    try:
        status, body = client.status_body(action, {"queue_name": "q", "wait": 21})
        assert status == 400
        assert body == {"exception": "Wait must be at least 0 and may not be greater than "
                                     "20 seconds.", "error": None}
        assert client.status_body(action, {"queue_name": "q", "wait": -1})[0] == 400
        assert client.status_body(action, {"queue_name": "q", "wait": "5"}) == (
            400, {"error": "Schema validation failed."})
        assert client.status_body(action, {"queue_name": "q", "wait": 1.5}) == (
            400, {"error": "Schema validation failed."})
    finally:
        client.ws.close()


def test_closing_the_connection_ends_the_wait(gateway: WSGatewayService,
                                              project: str) -> None:
    client = WSClient(ws_url(gateway), project)
    client.send("claim_create", {"queue_name": "left", "wait": 20})
    assert _wait_until(lambda: gateway.waiters.waiting(project, "left") == 1)
    client.ws.close()
    assert _wait_until(lambda: gateway.waiters.waiting(project, "left") == 0, 3.0)
    assert _wait_until(lambda: not gateway.inflight, 3.0)
    # Nothing was claimed for the departed connection.
    other = WSClient(ws_url(gateway), project)
    try:
        assert other.status_body("message_post", {
            "queue_name": "left", "messages": [{"body": 1}]})[0] == 201
        status, body = other.status_body("claim_create", {"queue_name": "left"})
        assert status == 201 and len(body["messages"]) == 1
    finally:
        other.ws.close()


def test_stopping_gateway_answers_waiting_requests_at_once(harness: GatewayHarness,
                                                           project: str) -> None:
    doomed = harness.gateway(shutdown_timeout=10.0)
    client = WSClient(ws_url(doomed), project)
    try:
        client.send("claim_create", {"queue_name": "stopping", "wait": 20})
        assert _wait_until(lambda: doomed.waiters.waiting(project, "stopping") == 1)
        started = time.monotonic()
        stopping = asyncio.run_coroutine_threadsafe(doomed.stop(), harness.loop)
        reply, _ = client.recv()
        assert reply["headers"]["status"] == 204
        assert time.monotonic() - started < 1.0  # not the 10 s shutdown_timeout
        client.ws.close()
        stopping.result(10)
    finally:
        client.ws.close()


# -- idempotent posts: the idempotency_key body field of message_post ----------
def test_idempotency_key_returns_the_original_ids(gateway: WSGatewayService,
                                                 project: str) -> None:
    client = WSClient(ws_url(gateway), project, binary=True)
    other_gateway_client = WSClient(ws_url(gateway), project)
    try:
        body = {"queue_name": "idem", "messages": [{"body": "once"}],
                "idempotency_key": "job-7"}
        status, first = client.status_body("message_post", body)
        assert status == 201
        # A retry (here from another connection, in the other frame kind).
        assert other_gateway_client.status_body("message_post", body) == (201, first)
        status, listed = client.status_body("message_list",
                                            {"queue_name": "idem", "echo": True})
        assert [m["id"] for m in listed["messages"]] == first["message_ids"]
        status, new = client.status_body("message_post", {**body, "idempotency_key": "job-8"})
        assert status == 201 and new != first
        status, conflict = client.status_body("message_post", {
            **body, "messages": [{"body": "twice"}]})
        assert status == 409 and "already used" in conflict["exception"]
    finally:
        client.ws.close()
        other_gateway_client.ws.close()


def test_idempotency_key_validation(gateway: WSGatewayService, project: str) -> None:
    client = WSClient(ws_url(gateway), project)
    try:
        body = {"queue_name": "idem", "messages": [{"body": 1}]}
        assert client.status_body("message_post", {**body, "idempotency_key": 7}) == (
            400, {"error": "Schema validation failed."})
        status, reply = client.status_body("message_post", {**body, "idempotency_key": ""})
        assert status == 400 and "idempotency_key" in reply["exception"]
    finally:
        client.ws.close()


# -- test-fire of a websocket connection subscription -----------------------------


def test_test_fire_reaches_a_subscribed_connection(harness: GatewayHarness,
                                                   gateway: WSGatewayService,
                                                   project: str) -> None:
    from herald.common.context import RequestContext

    listener = WSClient(ws_url(gateway), project)
    try:
        status, body = listener.status_body("subscription_create", {"queue_name": "tf"})
        assert status == 201
        ctxt = RequestContext(project_id=project, client_id=listener.headers["Client-ID"])
        result = harness.run(harness.storage.subscription_test(
            ctxt, "tf", body["subscription_id"]))
        assert result["delivered"] is True and result["error"] is None
        frame, _ = listener.recv()
        assert frame == result["payload"]
        assert frame["Message_Type"] == "TestNotification"
    finally:
        listener.ws.close()


def test_stopping_gateway_answers_503_to_what_runs_past_its_deadline(
        harness: GatewayHarness, project: str) -> None:
    """Issue 26: a request still running when the drain deadline comes gets
    a 503 reply before the connection closes, never silence."""
    doomed = harness.gateway(shutdown_timeout=0.05)
    client = WSClient(ws_url(doomed), project)
    try:
        client.send("message_list", {"queue_name": "slow-stop"})
        assert _wait_until(lambda: len(doomed.inflight) == 1)
        stopping = asyncio.run_coroutine_threadsafe(doomed.stop(), harness.loop)
        reply, _ = client.recv()
        assert reply["headers"]["status"] == 503
        assert reply["body"]["error"].startswith("The service is stopping.")
        assert reply["request"]["action"] == "message_list"
        stopping.result(10)
    finally:
        client.ws.close()

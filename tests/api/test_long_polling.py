"""Long polling over REST: ``?wait=<seconds>`` on claim create and message list.

The waits are real (the stack's storage worker wakes the API in-process,
as in embedded mode); the assertions measure how long after the post the
waiting request returned, so a wake-up that only comes at the deadline (or a
loop polling the database now and then) fails them.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from tests.api.conftest import Client, assert_error


def _post_later(api: Client, queue: str, delay: float, stamp: dict[str, float]) -> threading.Thread:
    poster = Client(api.base_url, project=api.project)

    def run() -> None:
        time.sleep(delay)
        poster.post_messages(queue, 1)
        stamp["posted"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("value", ["21", "-1", "100"])
@pytest.mark.parametrize("path", ["claims", "messages"])
def test_wait_out_of_range_is_refused(api: Client, path: str, value: str) -> None:
    method = api.post if path == "claims" else api.get
    resp = method(f"/v2/queues/lp/{path}?wait={value}",
                  **({"json_body": {"ttl": 60}} if path == "claims" else {}))
    assert_error(resp, 400, "Invalid API request",
                 "Wait must be at least 0 and may not be greater than 20 seconds.")


@pytest.mark.parametrize("path", ["claims", "messages"])
def test_wait_not_an_integer_is_refused(api: Client, path: str) -> None:
    method = api.post if path == "claims" else api.get
    resp = method(f"/v2/queues/lp/{path}?wait=soon")
    assert_error(resp, 400, "Invalid parameter", 'The "wait" parameter is invalid.')


def test_claim_returns_as_soon_as_a_message_is_posted(api: Client) -> None:
    stamp: dict[str, float] = {}
    thread = _post_later(api, "lp-claim", 0.7, stamp)
    started = time.monotonic()
    resp = api.post("/v2/queues/lp-claim/claims?wait=10", json_body={"ttl": 60})
    returned = time.monotonic()
    thread.join()
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["messages"]) == 1
    assert returned - started >= 0.6  # it did wait for the post
    assert returned - stamp["posted"] < 1.0


def test_list_returns_as_soon_as_a_message_is_posted(api: Client) -> None:
    api.post_messages("lp-list", 1)
    first = api.get("/v2/queues/lp-list/messages?echo=true").json()
    marker = first["links"][0]["href"].split("marker=")[1]
    stamp: dict[str, float] = {}
    thread = _post_later(api, "lp-list", 0.7, stamp)
    resp = api.get(f"/v2/queues/lp-list/messages?echo=true&wait=10&marker={marker}")
    returned = time.monotonic()
    thread.join()
    assert resp.status_code == 200
    assert len(resp.json()["messages"]) == 1
    assert returned - stamp["posted"] < 1.0


def test_released_claim_wakes_a_waiting_claimer(api: Client) -> None:
    api.post_messages("lp-release", 1)
    claim_id, _ = api.claim("lp-release", ttl=300)

    def release() -> None:
        time.sleep(0.7)
        Client(api.base_url, project=api.project).delete(
            f"/v2/queues/lp-release/claims/{claim_id}")

    thread = threading.Thread(target=release)
    thread.start()
    started = time.monotonic()
    resp = api.post("/v2/queues/lp-release/claims?wait=10", json_body={"ttl": 60})
    elapsed = time.monotonic() - started
    thread.join()
    assert resp.status_code == 201
    assert 0.6 <= elapsed < 2.0


def test_deadline_gives_the_empty_answer(api: Client) -> None:
    started = time.monotonic()
    resp = api.post("/v2/queues/lp-empty/claims?wait=1", json_body={"ttl": 60})
    claim_elapsed = time.monotonic() - started
    assert resp.status_code == 204
    assert 0.9 <= claim_elapsed < 2.5
    started = time.monotonic()
    resp = api.get("/v2/queues/lp-empty/messages?wait=1")
    assert resp.status_code == 200 and resp.json()["messages"] == []
    assert 0.9 <= time.monotonic() - started < 2.5


def test_wait_zero_does_not_wait(api: Client) -> None:
    started = time.monotonic()
    assert api.post("/v2/queues/lp-zero/claims?wait=0", json_body={"ttl": 60}).status_code == 204
    assert time.monotonic() - started < 0.5


def test_other_queues_do_not_end_the_wait(api: Client) -> None:
    stamp: dict[str, float] = {}
    thread = _post_later(api, "lp-elsewhere", 0.2, stamp)
    resp = api.post("/v2/queues/lp-mine/claims?wait=1", json_body={"ttl": 60})
    thread.join()
    assert resp.status_code == 204


def _raw_request(port: int, api: Client, path: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    request = (f"POST {path} HTTP/1.1\r\nHost: x\r\nClient-ID: {api.client_id}\r\n"
               f"X-Project-ID: {api.project}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sock.sendall(request)
    return sock


def _wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_client_disconnect_ends_the_wait_and_claims_nothing(api: Client, stack: Any) -> None:
    port = int(stack.base_url.rsplit(":", 1)[1])
    sock = _raw_request(port, api, "/v2/queues/lp-gone/claims?wait=20", b'{"ttl": 60}')
    assert _wait_until(lambda: stack.service.waiters.waiting(api.project, "lp-gone") == 1)
    in_flight = stack.service._in_flight.count
    sock.close()
    # The waiter is unregistered at once, not at the 20 s deadline.
    assert _wait_until(lambda: stack.service.waiters.waiting(api.project, "lp-gone") == 0, 3.0)
    assert _wait_until(lambda: stack.service._in_flight.count < in_flight, 3.0)
    # A message posted afterwards is not claimed by the departed client.
    api.post_messages("lp-gone", 1)
    time.sleep(0.2)
    listed = api.get("/v2/queues/lp-gone/messages?echo=true").json()["messages"]
    assert len(listed) == 1


def test_stopping_api_answers_waiting_requests_at_once(api: Client, stack: Any) -> None:
    from herald.api.service import APIService

    service = APIService(stack.conf, stack.storage, local=stack.worker.local)

    async def start() -> None:
        service.start()

    stack.run(start())
    other = Client(f"http://127.0.0.1:{service.port}", project=api.project)
    result: dict[str, Any] = {}

    def wait() -> None:
        result["resp"] = other.post("/v2/queues/lp-stop/claims?wait=20", json_body={"ttl": 60})

    thread = threading.Thread(target=wait)
    thread.start()
    assert _wait_until(lambda: service.waiters.waiting(api.project, "lp-stop") == 1)
    started = time.monotonic()
    stack.run(service.stop(grace=10.0))
    thread.join(10)
    assert time.monotonic() - started < 2.0
    assert result["resp"].status_code == 204

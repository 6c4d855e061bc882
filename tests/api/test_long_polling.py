"""Long polling over REST: ``?wait=<seconds>`` on claim create and message list.

The waits are real (the stack's storage worker wakes the API in-process,
as in embedded mode). No sleeps and no stopwatch: a test posts once the
long poll logged ``long poll parked`` (``herald.testing.log_events``), and
the waiting request must then answer while its 20 s deadline is far off
(``WOKEN_WITHIN``), so a wake-up that only comes at the deadline fails it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from herald.testing.log_events import LogEvents
from herald.testing.polling import wait_until
from tests.api.conftest import Client, assert_error

# The longest wait there is; a woken poll answers within milliseconds, so
# half of it tells a wake-up from the deadline on any machine.
MAX_WAIT = 20
WOKEN_WITHIN = MAX_WAIT / 2
PARKED = "long poll parked"


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


def parked(events: LogEvents, api: Client, queue: str) -> Callable[[], int]:
    """How many long polls of ``api``'s project parked on ``queue`` so far."""
    return lambda: events.count(PARKED, project=api.project, queue=queue)


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
    with LogEvents() as events:
        waiting = Waiting(lambda: api.post(f"/v2/queues/lp-claim/claims?wait={MAX_WAIT}",
                                           json_body={"ttl": 60}))
        wait_until(parked(events, api, "lp-claim"), what="the claim parked")
        assert waiting.is_alive()  # it did wait for the post
        Client(api.base_url, project=api.project).post_messages("lp-claim", 1)
        resp = waiting.answered(WOKEN_WITHIN)
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["messages"]) == 1


def test_list_returns_as_soon_as_a_message_is_posted(api: Client) -> None:
    api.post_messages("lp-list", 1)
    first = api.get("/v2/queues/lp-list/messages?echo=true").json()
    marker = first["links"][0]["href"].split("marker=")[1]
    with LogEvents() as events:
        waiting = Waiting(lambda: api.get(
            f"/v2/queues/lp-list/messages?echo=true&wait={MAX_WAIT}&marker={marker}"))
        wait_until(parked(events, api, "lp-list"), what="the listing parked")
        Client(api.base_url, project=api.project).post_messages("lp-list", 1)
        resp = waiting.answered(WOKEN_WITHIN)
    assert resp.status_code == 200
    assert len(resp.json()["messages"]) == 1


def test_released_claim_wakes_a_waiting_claimer(api: Client) -> None:
    api.post_messages("lp-release", 1)
    claim_id, _ = api.claim("lp-release", ttl=300)
    with LogEvents() as events:
        waiting = Waiting(lambda: api.post(f"/v2/queues/lp-release/claims?wait={MAX_WAIT}",
                                           json_body={"ttl": 60}))
        wait_until(parked(events, api, "lp-release"), what="the claim parked")
        assert waiting.is_alive()  # the claimed message is not claimable
        Client(api.base_url, project=api.project).delete(
            f"/v2/queues/lp-release/claims/{claim_id}")
        resp = waiting.answered(WOKEN_WITHIN)
    assert resp.status_code == 201


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
    with LogEvents() as events:
        resp = api.post("/v2/queues/lp-zero/claims?wait=0", json_body={"ttl": 60})
    assert resp.status_code == 204
    assert parked(events, api, "lp-zero")() == 0  # answered without parking


def test_other_queues_do_not_end_the_wait(api: Client) -> None:
    with LogEvents() as events:
        waiting = Waiting(lambda: api.post("/v2/queues/lp-mine/claims?wait=2",
                                           json_body={"ttl": 60}))
        wait_until(parked(events, api, "lp-mine"), what="the claim parked")
        Client(api.base_url, project=api.project).post_messages("lp-elsewhere", 1)
        resp = waiting.answered(WOKEN_WITHIN)
        # Answered at its deadline: parked once, never woken to try again.
        assert parked(events, api, "lp-mine")() == 1
    assert resp.status_code == 204


def _raw_request(port: int, api: Client, path: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    request = (f"POST {path} HTTP/1.1\r\nHost: x\r\nClient-ID: {api.client_id}\r\n"
               f"X-Project-ID: {api.project}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sock.sendall(request)
    return sock


def _wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    return bool(wait_until(predicate, timeout))


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
    # (No waiter is left, as checked above, so nothing can claim it now.)
    api.post_messages("lp-gone", 1)
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

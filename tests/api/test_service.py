"""APIService lifecycle and cross-cutting behaviour: graceful stop, 500s for
unexpected exceptions, and request ids in log lines."""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import time
import uuid

import pytest
import requests

from herald.api.service import APIService
from herald.common.context import current_request_id
from tests.api.conftest import SLOW_SECONDS, Client, Stack, assert_error


def test_unexpected_exception_is_500_with_its_text(api: Client,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="herald.api"):
        resp = api.get("/v2/queues/crash-q/stats")
    assert resp.json() == {"title": "Internal server error", "description": "boom"}
    assert resp.status_code == 500
    # The traceback is logged for operators.
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


def test_log_lines_carry_the_request_id(api: Client) -> None:
    seen: list[tuple[str, str]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), current_request_id()))

    handler = Capture(level=logging.DEBUG)
    logger = logging.getLogger("herald.api")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        rid = f"req-{uuid.uuid4()}"
        resp = api.get("/v2/queues/down-q/stats", headers={"X-Openstack-Request-Id": rid})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert resp.status_code == 503
    assert any("storage unavailable" in message and logged == rid for message, logged in seen)


def test_stop_lets_in_flight_requests_finish(stack: Stack, api: Client) -> None:
    service = APIService(stack.conf, stack.storage, local=stack.worker.local)

    async def start() -> None:
        service.start()

    stack.run(start())
    assert service.port and service.port != stack.service.port
    url = f"http://127.0.0.1:{service.port}"
    client = Client(url, project=api.project)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, "/v2/queues/slow-q/stats")
        time.sleep(SLOW_SECONDS / 3)  # the request is now waiting on storage
        started = time.monotonic()
        stack.run(service.stop(grace=5.0))
        stopped_after = time.monotonic() - started
        resp = pending.result(10)
    assert resp.status_code == 200
    assert resp.json()["messages"]["total"] == 0
    assert stopped_after < 5.0  # it waited for the request, not for the whole grace
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/", timeout=5)


def test_stop_serves_connections_waiting_in_the_backlog(stack: Stack) -> None:
    # The loop is busy when the stop begins (as under load): connections the
    # kernel completed meanwhile wait in the listener's backlog. Closing the
    # listener would reset them; they must be answered instead.
    service = APIService(stack.conf, stack.storage, local=stack.worker.local)

    async def start() -> None:
        service.start()

    async def busy_then_stop() -> None:
        time.sleep(0.5)  # blocks the loop on purpose: nothing is accepted
        await service.stop(grace=5.0)

    stack.run(start())
    port = service.port

    def request_while_busy() -> bytes:
        time.sleep(0.15)  # the loop is blocked by now
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        return reply

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = [pool.submit(request_while_busy) for _ in range(4)]
        stack.run(busy_then_stop())
        for reply in replies:
            assert reply.result(10).startswith(b"HTTP/1.1 200 "), reply.result()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_stop_answers_503_to_what_runs_past_the_grace_period(stack: Stack,
                                                             api: Client) -> None:
    # Issue 26: never a reset (nor a logged 500) for a request the stop cut off.
    service = APIService(stack.conf, stack.storage, local=stack.worker.local)

    async def start() -> None:
        service.start()

    stack.run(start())
    client = Client(f"http://127.0.0.1:{service.port}", project=api.project)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, "/v2/queues/slow-q/stats")
        time.sleep(SLOW_SECONDS / 3)
        started = time.monotonic()
        stack.run(service.stop(grace=0.05))
        assert time.monotonic() - started < SLOW_SECONDS
        resp = pending.result(10)
    assert_error(resp, 503, "Service temporarily unavailable",
                 "The service is stopping. Please try again in a few seconds.")
    assert resp.headers["Connection"] == "close"


def test_stop_closes_keep_alive_connections_after_their_next_answer(stack: Stack,
                                                                    api: Client) -> None:
    """From the stop on, every answer says Connection: close, and the
    connection closes after it: the client's next request goes elsewhere."""
    service = APIService(stack.conf, stack.storage, local=stack.worker.local)

    async def start() -> None:
        service.start()

    stack.run(start())
    client = Client(f"http://127.0.0.1:{service.port}", project=api.project)
    assert client.get("/v2/queues/q/stats").headers.get("Connection") != "close"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(client.get, "/v2/queues/slow-q/stats")
        time.sleep(SLOW_SECONDS / 3)  # in flight when the stop begins
        stopping = pool.submit(stack.run, service.stop(grace=5.0))
        resp = slow.result(10)
        stopping.result(10)
    assert resp.status_code == 200
    assert resp.headers["Connection"] == "close"


def test_stop_twice_is_harmless(stack: Stack) -> None:
    service = APIService(stack.conf, stack.storage, local=stack.worker.local)

    async def start() -> None:
        service.start()

    stack.run(start())
    stack.run(service.stop())
    stack.run(service.stop())


def test_500_body_for_storage_bug(api: Client) -> None:
    assert_error(api.post("/v2/queues/bug-q/claims"), 500, "Internal server error",
                 "KeyError: 'oops'")

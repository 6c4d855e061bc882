"""Connection behaviour: binary bodies, concurrency, limits, health, shutdown.

Each test that needs special ``[ws_gateway]`` settings starts a gateway of
its own on the shared harness (same storage, same tooz group).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
import time

import pytest
import requests
import websocket

from herald.testing import polling
from tests.ws.client import WSClient
from tests.ws.conftest import SLOW_SECONDS, ws_url


def close_code(ws: websocket.WebSocket, timeout: float = 10.0) -> int | None:
    """Read until the server's close frame; its status code (None if the TCP
    connection ended without one)."""
    ws.settimeout(timeout)
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return None


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    polling.wait_until(predicate, timeout, what=what)


# -- binary bodies -----------------------------------------------------------

def test_binary_body_round_trips_byte_identical_over_msgpack(gateway, project: str) -> None:
    blob = bytes(range(256)) * 4
    nested = {"image": b"\x89PNG\r\n\x1a\n\x00\xff", "name": "x", "parts": [b"\x00", b""]}
    with WSClient(ws_url(gateway), project, binary=True) as c:
        status, body = c.status_body("message_post", {"queue_name": "bin", "messages": [
            {"body": blob, "ttl": 300}, {"body": nested}]})
        assert status == 201
        ids = body["message_ids"]
        listed = c.status_body("message_list", {"queue_name": "bin", "echo": True})[1]
        assert [m["body"] for m in listed["messages"]] == [blob, nested]
        assert type(listed["messages"][0]["body"]) is bytes
        got = c.status_body("message_get", {"queue_name": "bin", "message_id": ids[0]})[1]
        assert got["messages"]["body"] == blob
        claimed = c.status_body("claim_create", {"queue_name": "bin"})[1]
        assert [m["body"] for m in claimed["messages"]] == [blob, nested]
    # A JSON client cannot receive bytes: it gets their base64 text.
    with WSClient(ws_url(gateway), project) as j:
        got = j.status_body("message_get", {"queue_name": "bin", "message_id": ids[1]})[1]
        assert got["messages"]["body"]["image"] == "iVBORw0KGgoA/w=="


def test_frames_leave_without_waiting_for_an_ack(gateway, project: str) -> None:
    """TCP_NODELAY on every websocket: a subscriber only listens, so with
    Nagle's algorithm each push behind an unacknowledged one waited for the
    client's delayed ACK (~17 ms p50 at 200 pushes/s in the bench)."""
    with WSClient(ws_url(gateway), project) as c:
        c.status_body("queue_list")
        sockets = [conn.ws_connection.stream.socket for conn in list(gateway.connections)
                   if conn.ws_connection is not None]
        assert sockets
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


# -- concurrency -------------------------------------------------------------

def test_a_slow_storage_call_delays_no_one(gateway, project: str) -> None:
    with WSClient(ws_url(gateway), project) as a, WSClient(ws_url(gateway), project) as b:
        started = time.monotonic()
        a.send("message_list", {"queue_name": "slow-q"})
        a.send("queue_get_stats", {"queue_name": "fast-q"})
        b.send("queue_list")
        reply_b, _ = b.recv()
        assert reply_b["headers"]["status"] == 200
        # Well before the slow call could end (a reply held behind it would
        # take SLOW_SECONDS), with room for a loaded machine: a full CI run
        # once answered in 0.76 s.
        assert time.monotonic() - started < SLOW_SECONDS * 0.8
        # Same connection: the fast request overtakes the slow one; each reply
        # echoes its request, which is how a client tells them apart.
        first, _ = a.recv()
        assert first["request"]["action"] == "queue_get_stats"
        assert time.monotonic() - started < SLOW_SECONDS * 0.8
        second, _ = a.recv()
        assert second["request"]["action"] == "message_list"
        assert second["headers"]["status"] == 200
        assert time.monotonic() - started >= SLOW_SECONDS


# -- limits ------------------------------------------------------------------

def test_oversize_frame_closes_with_1009(harness, project: str) -> None:
    small = harness.gateway(max_frame_size=2048)
    with WSClient(ws_url(small), project) as c:
        # Under the limit: served.
        assert c.status_body("queue_list")[0] == 200
        c.send("message_post", {"queue_name": "q", "messages": [{"body": "x" * 4096}]})
        assert close_code(c.ws) == 1009
    assert harness.run(_no_connections(small), timeout=10)


async def _no_connections(service) -> bool:  # type: ignore[no-untyped-def]
    return await polling.wait_until_async(lambda: not service.connections, 5,
                                          what="no connection left")


def test_client_that_stops_reading_is_disconnected(harness, project: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="herald.ws_gateway.connection")
    bounded = harness.gateway(outbound_queue_size=4, outbound_max_bytes=1 << 20)
    big = "x" * 20000
    with WSClient(ws_url(bounded), project) as producer:
        producer.status_body("message_post", {"queue_name": "big", "messages": [
            {"body": big} for _ in range(10)]})
    # A reader with a tiny receive buffer that never reads: ~200 KB replies
    # pile up in the kernel buffers, then in the gateway's outbound queue.
    lazy = websocket.create_connection(
        ws_url(bounded), timeout=10, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    request = json.dumps({"action": "message_list",
                          "headers": {"Client-ID": "8e3a7b1c-6c7e-4b70-9a68-6e1d7f0f6c11",
                                      "X-Project-ID": project},
                          "body": {"queue_name": "big", "echo": True}})
    peak = {"frames": 0}
    stop_sampling = threading.Event()

    def sample() -> None:
        # The gateway's per-connection backlog never exceeds its bound.
        while not stop_sampling.is_set():
            for conn in list(bounded.connections):
                peak["frames"] = max(peak["frames"], conn.pending[0])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for _ in range(300):
            try:
                lazy.send(request)
            except (websocket.WebSocketException, OSError):
                break  # the gateway already hung up
        wait_until(lambda: "client is not reading its replies" in caplog.text, 20,
                   "slow-reader log line")
        wait_until(lambda: not bounded.connections, 15, "connection dropped")
    finally:
        stop_sampling.set()
        sampler.join()
        lazy.close()
    assert "closing with 1008" in caplog.text
    assert peak["frames"] <= 4
    # The gateway still serves everyone else.
    with WSClient(ws_url(bounded), project) as other:
        assert other.status_body("queue_list")[0] == 200


# -- health and membership --------------------------------------------------

def test_health_lists_live_gateways_and_a_stopped_one_leaves(harness, gateway) -> None:
    other = harness.gateway()
    report = requests.get(f"http://127.0.0.1:{gateway.port}/health", timeout=10).json()
    assert report["gateway"] == gateway.member_id
    assert report["storage_reachable"] is True
    assert {gateway.member_id, other.member_id} <= set(report["gateways"])
    harness.run(other.stop())
    report = requests.get(f"http://127.0.0.1:{gateway.port}/health", timeout=10).json()
    assert other.member_id not in report["gateways"]
    assert gateway.member_id in report["gateways"]
    # Plain GET elsewhere is not a websocket upgrade.
    assert requests.get(f"http://127.0.0.1:{gateway.port}/", timeout=10).status_code == 400


def test_stop_finishes_in_flight_requests_then_closes_with_1001(harness, gateway,
                                                                project: str) -> None:
    leaving = harness.gateway()
    with WSClient(ws_url(leaving), project) as c:
        c.send("message_list", {"queue_name": "slow-stop"})
        wait_until(lambda: leaving.inflight, 5, "the request in flight")
        stopping = asyncio.run_coroutine_threadsafe(leaving.stop(), harness.loop)
        reply, _ = c.recv()
        assert reply["headers"]["status"] == 200
        assert reply["request"]["action"] == "message_list"
        assert close_code(c.ws) == 1001
        stopping.result(15)
    # It no longer listens.
    with pytest.raises((ConnectionError, websocket.WebSocketException, OSError)):
        websocket.create_connection(ws_url(leaving), timeout=2)
    report = requests.get(f"http://127.0.0.1:{gateway.port}/health", timeout=10).json()
    assert leaving.member_id not in report["gateways"]


def test_msgpack_post_size_counts_raw_bytes(gateway, project: str) -> None:
    # 200 000 raw bytes fit the 262 144 limit in msgpack; as base64 JSON they
    # would not, so the limit is measured on the request's own encoding.
    with WSClient(ws_url(gateway), project, binary=True) as c:
        status, body = c.status_body("message_post", {"queue_name": "rawsize", "messages": [
            {"body": b"\xab" * 200000}]})
        assert status == 201, body
        status, body = c.status_body("message_post", {"queue_name": "rawsize", "messages": [
            {"body": b"\xab" * 262144}]})
        assert (status, body["exception"]) == (
            400, "Message collection size is too large. Max size 262144")

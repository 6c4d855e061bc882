"""Operating Herald as deployed: load balancer, request ids in logs, SIGTERM.

- nginx, configured from ``deploy/nginx``, in front of one api and two
  ws-gateways (local processes): REST and WebSocket both work through it, and
  websocket clients are spread over both gateways.
- One message posted with a chosen ``X-Openstack-Request-Id`` leaves that id
  on the api's access line, on the storage worker's line (JSON lines there:
  ``[DEFAULT] log_format = json``) and on the notifier's delivery line of its
  webhook notification.
- SIGTERM under light load, to a storage worker, a ws-gateway and an api: no
  request that reached the process fails, each exits 0, and each told
  systemd's notify socket READY=1 and STOPPING=1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import websocket

from herald.testing.topology import Service, Topology, gateway_health, tail, ws_url
from tests.e2e.flows import Rest
from tests.e2e.test_notifications import Receiver, wait_until
from tests.ws.client import WSClient

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

HEADERS = {"Client-ID": "3381af92-2b9e-11e3-b191-71861300734c"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(delay=0)
    yield r
    r.close()


def test_rest_and_websocket_through_nginx(topology: Topology) -> None:
    topology.distributed(storage_workers=1, apis=1)
    api = topology.services["api"]
    gateways = [topology.ws_gateway("ws-gateway-1"), topology.ws_gateway("ws-gateway-2")]
    lb = topology.lb([api], gateways)
    project = f"lb-{uuid.uuid4().hex[:8]}"

    rest = Rest(lb.rest_url, project=project)
    assert rest.create_queue("through-lb").status_code == 201
    posted = rest.post("through-lb", {"via": "nginx"})
    assert posted.status_code == 201, posted.text
    assert requests.get(f"{lb.rest_url}/readyz", timeout=5).status_code == 200

    clients = [WSClient(lb.ws_url, project) for _ in range(4)]
    try:
        for n, client in enumerate(clients):
            status, body = client.status_body("message_post", {
                "queue_name": "through-lb", "messages": [{"body": {"ws": n}}]})
            assert status == 201, body
        # Round robin over the two gateways: each holds two of the four.
        counts = [gateway_health(g.url)["connections"] for g in gateways]
        assert counts == [2, 2], counts
        status, body = clients[0].status_body("message_list", {
            "queue_name": "through-lb", "echo": True})
        assert status == 200
        assert len(body["messages"]) == 5
    finally:
        for client in clients:
            client.close()


def _lines_with(log: str, request_id: str) -> list[str]:
    return [line for line in log.splitlines() if request_id in line]


def test_request_id_follows_a_message_to_the_notifier(topology: Topology,
                                                      receiver: Receiver) -> None:
    env = {"OS_NOTIFICATION__DISPATCH_INTERVAL": "0.2"}
    topology.run_once("db-upgrade", ["db", "upgrade"], env)
    worker = topology.storage("storage", {**env, "OS_STORAGE__MIGRATE_ON_START": "false",
                                          "OS_DEFAULT__LOG_FORMAT": "json"})
    api = topology.api("api", env)
    rest = Rest(api.url, project=f"rid-{uuid.uuid4().hex[:8]}")
    created = rest.request("POST", "/v2/queues/audited/subscriptions",
                           json={"subscriber": receiver.url, "ttl": 600})
    assert created.status_code == 201, created.text

    request_id = f"req-{uuid.uuid4()}"
    response = rest.request("POST", "/v2/queues/audited/messages",
                            headers={"X-Openstack-Request-Id": request_id},
                            json={"messages": [{"body": {"n": 1}, "ttl": 300}]})
    assert response.status_code == 201, response.text
    assert response.headers["X-Openstack-Request-Id"] == request_id
    wait_until(lambda: receiver.distinct() == 1, 20, "the webhook delivery")

    api_lines = _lines_with(api.log(), request_id)
    assert any("POST /v2/queues/audited/messages 201" in line for line in api_lines), \
        tail(api.log())

    def worker_entries() -> list[dict]:
        return [json.loads(line) for line in worker.log().splitlines()
                if line.startswith("{") and request_id in line]

    # The delivery line is written right after the receiver answered.
    wait_until(lambda: any("delivered" in e["message"] for e in worker_entries()), 10,
               "the notifier's delivery line")
    entries = worker_entries()
    assert all(e["request_id"] == request_id for e in entries), entries
    assert all(e["service"] == "storage" and e["member_id"] for e in entries), entries
    messages = [e["message"] for e in entries]
    assert any(m.startswith("message_post ") for m in messages), messages
    assert any(m.startswith("delivered notification") for m in messages), messages


# -- SIGTERM under light load ---------------------------------------------------


@dataclass
class Outcomes:
    ok: int = 0
    refused: int = 0  # never reached the process: its listener was closed
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ok: bool, refused: bool = False, failure: str = "") -> None:
        with self.lock:
            if ok:
                self.ok += 1
            elif refused:
                self.refused += 1
            else:
                self.failures.append(failure)


def _refused(exc: requests.RequestException) -> bool:
    # A fresh connection per request: refused means the request never
    # reached the server; a reset or a cut-off reply would be a failure.
    reason = exc
    while reason is not None:
        if isinstance(reason, ConnectionRefusedError):
            return True
        reason = reason.__cause__ or reason.__context__ or getattr(reason, "reason", None)
        if isinstance(reason, str):
            return False
    return "Connection refused" in str(exc)


def _rest_load(url: str, project: str, stop: threading.Event, out: Outcomes) -> None:
    headers = {**HEADERS, "X-Project-ID": project, "Connection": "close"}
    seq = 0
    while not stop.is_set():
        seq += 1
        try:
            response = requests.post(f"{url}/v2/queues/load/messages", headers=headers,
                                     json={"messages": [{"body": {"seq": seq}}]}, timeout=30)
        except requests.RequestException as exc:
            out.add(False, refused=_refused(exc), failure=repr(exc))
            time.sleep(0.02)
            continue
        out.add(response.status_code == 201, failure=f"{response.status_code} {response.text}")
        time.sleep(0.01)


def _ws_load(client: WSClient, stop: threading.Event, out: Outcomes,
             close_codes: list[int]) -> None:
    while not stop.is_set():
        try:
            client.send("message_post", {"queue_name": "load", "messages": [{"body": 1}]})
            opcode, data = client.ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError) as exc:
            out.add(False, refused=True, failure=repr(exc))  # closed under us: checked below
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            close_codes.append(struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0)
            return
        reply = json.loads(data.decode())
        status = reply["headers"]["status"]
        out.add(status == 201, failure=f"{status} {reply['body']}")


class NotifySocket:
    """systemd's notify socket, played by the test (``NOTIFY_SOCKET``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def close(self) -> None:
        self.sock.close()
        if self.path.exists():
            os.unlink(self.path)


def _sigterm_and_wait(service: Service, timeout: float = 30.0) -> int | None:
    service.send(signal.SIGTERM)
    return service.wait(timeout)


def test_sigterm_under_light_load(topology: Topology, tmp_path: Path) -> None:
    notify = NotifySocket(Path(f"/tmp/herald-notify-{uuid.uuid4().hex[:8]}.sock"))
    env = {"NOTIFY_SOCKET": str(notify.path), "OS_STORAGE__MIGRATE_ON_START": "false"}
    try:
        topology.run_once("db-upgrade", ["db", "upgrade"], env)
        victim = topology.storage("storage-1", env, wait=False)
        survivor = topology.storage("storage-2", env)
        victim.wait_for_log("RPC server listening on topic")
        api_1 = topology.api("api-1", env)
        api_2 = topology.api("api-2", env)
        gateway = topology.ws_gateway("ws-gateway", env)
        project = f"term-{uuid.uuid4().hex[:8]}"
        assert Rest(api_2.url, project=project).create_queue("load").status_code == 201

        # 1. A storage worker, while two clients post through api-2.
        stop, rest_out = threading.Event(), Outcomes()
        posters = [threading.Thread(target=_rest_load, args=(api_2.url, project, stop, rest_out))
                   for _ in range(2)]
        for t in posters:
            t.start()
        time.sleep(1.0)
        assert _sigterm_and_wait(victim) == 0, tail(victim.log())
        time.sleep(0.5)
        stop.set()
        for t in posters:
            t.join(30)
        assert not rest_out.failures, rest_out.failures[:5]
        assert rest_out.refused == 0 and rest_out.ok > 10, rest_out
        assert survivor.running()

        # 2. The ws-gateway, while a websocket client posts in a loop: every
        # reply it got is a success, then a 1001 close.
        ws_out, close_codes = Outcomes(), []
        client = WSClient(ws_url(gateway), project)
        stop = threading.Event()
        ws_thread = threading.Thread(target=_ws_load, args=(client, stop, ws_out, close_codes))
        ws_thread.start()
        time.sleep(1.0)
        assert _sigterm_and_wait(gateway) == 0, tail(gateway.log())
        ws_thread.join(15)
        client.close()
        assert not ws_out.failures, ws_out.failures[:5]  # every reply was a 201
        assert close_codes == [1001], (close_codes, ws_out.failures)
        assert ws_out.ok > 5, ws_out

        # 3. api-1, while two clients post to it: requests it accepted
        # complete (201); afterwards connections are refused, never reset.
        stop, api_out = threading.Event(), Outcomes()
        posters = [threading.Thread(target=_rest_load, args=(api_1.url, project, stop, api_out))
                   for _ in range(2)]
        for t in posters:
            t.start()
        time.sleep(1.0)
        assert _sigterm_and_wait(api_1) == 0, tail(api_1.log())
        stop.set()
        for t in posters:
            t.join(30)
        assert not api_out.failures, api_out.failures[:5]
        assert api_out.ok > 10, api_out

        # Every process said READY=1 once up and STOPPING=1 on its SIGTERM.
        messages = notify.drain()
        # Five long-running processes; `db upgrade` is one-shot and says nothing.
        assert messages.count("READY=1") == 5, messages
        assert messages.count("STOPPING=1") == 3, messages
    finally:
        notify.close()

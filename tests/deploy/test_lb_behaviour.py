"""deploy/nginx/herald-lb.conf with real traffic: what the load balancer does.

A real nginx (Debian's, as in test_nginx.py) runs herald-lb.conf and the
websocket upstream of backends-compose.conf as shipped, with two worker
processes like the official image (``worker_processes auto``). Only the
addresses change: the listeners move to free local ports, and the replicas
are small stand-in servers in this process that count what reaches them.

- REST: an api that answers 503 (no storage worker, after ``[rpc]
  call_timeout``) is not retried on the other replica, so the client has the
  503 after one delay, not two; a replica that refuses connections is
  skipped.
- WebSocket: new connections go to the gateway with the fewest open ones
  (least_conn over a shared zone), so 9 upgrades mixed with plain requests
  land 3, 3, 3, and the next ones fill the gateway that lost connections.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from herald.testing.topology import nginx_binary
from tests.deploy.conftest import REPO

NGINX_DIR = REPO / "deploy" / "nginx"
# What an api waits for a storage worker before its 503, scaled down.
DELAY = 1.5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StandIn:
    """A replica: answers each request by ``handler`` and counts them."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.requests = 0
        self.open = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            with self.lock:
                self.requests += 1
            self.handler(self, conn, head.decode("latin-1"))

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            try:
                conn.close()
            except OSError:
                pass


def _answer_503_late(stand_in: StandIn, conn: socket.socket, head: str) -> None:
    time.sleep(DELAY)
    body = b'{"title": "Service Unavailable"}'
    conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


def _answer_200(stand_in: StandIn, conn: socket.socket, head: str) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def _gateway(stand_in: StandIn, conn: socket.socket, head: str) -> None:
    # An upgrade is held open until the client (through nginx) closes it,
    # as a websocket would be; anything else is answered at once.
    if "upgrade: websocket" not in head.lower():
        _answer_200(stand_in, conn, head)
        return
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\n")
    with stand_in.lock:
        stand_in.open += 1
    try:
        # Whatever the client sends, the gateway answers with its port, so
        # that a test can tell which gateway holds a connection.
        while conn.recv(4096):
            conn.sendall(str(stand_in.port).encode())
    except OSError:
        pass
    with stand_in.lock:
        stand_in.open -= 1


class LoadBalancer:
    def __init__(self, nginx: str, tmp_path: Path, api: list[int], gateways: list[int]) -> None:
        self.rest_port, self.ws_port = _free_port(), _free_port()
        self.status_port = _free_port()
        lb = (NGINX_DIR / "herald-lb.conf").read_text()
        assert lb.count("listen 8888;") == 1 and lb.count("listen 9000;") == 1
        assert lb.count("listen 8889;") == 1
        lb = lb.replace("listen 8888;", f"listen 127.0.0.1:{self.rest_port};")
        lb = lb.replace("listen 9000;", f"listen 127.0.0.1:{self.ws_port};")
        lb = lb.replace("listen 8889;", f"listen 127.0.0.1:{self.status_port};")
        backends = (NGINX_DIR / "backends-compose.conf").read_text()
        # The shipped websocket upstream, with the stand-ins as its servers.
        assert "    server ws-gateway:9000;\n" in backends
        backends = backends.replace("    server ws-gateway:9000;\n", "".join(
            f"    server 127.0.0.1:{port};\n" for port in gateways))
        # The api replicas as a named group (Docker's DNS is not here).
        backends = backends.replace("default api:8888;", "default herald_api;")
        servers = "".join(f"    server 127.0.0.1:{port};\n" for port in api)
        backends += f"upstream herald_api {{\n{servers}}}\n"
        (tmp_path / "lb.conf").write_text(lb)
        (tmp_path / "backends.conf").write_text(backends)
        main = tmp_path / "nginx.conf"
        main.write_text(f"""daemon off;
worker_processes 2;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    access_log off;
    include {tmp_path}/backends.conf;
    include {tmp_path}/lb.conf;
}}
""")
        self.process = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(main)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", self.ws_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.rest_port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)

    def request(self, method: str, path: str = "/v2/queues") -> tuple[int, float]:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.rest_port), timeout=30) as conn:
            conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: lb\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            response = b""
            while chunk := conn.recv(4096):
                response += chunk
        return int(response.split()[1]), time.monotonic() - started

    def websocket(self) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.ws_port), timeout=10)
        conn.sendall(b"GET / HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            assert chunk, "nginx closed the upgrade"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return conn

    def plain(self) -> int:
        # A plain request on the websocket port (an operator's curl, a probe).
        with socket.create_connection(("127.0.0.1", self.ws_port), timeout=10) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := conn.recv(4096):
                response += chunk
        return int(response.split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def nginx() -> str:
    binary = nginx_binary()
    assert binary, "nginx is not installed: run `make test-deps` (apt-get install nginx-light)"
    return binary


@pytest.fixture
def start(nginx: str, tmp_path: Path) -> Iterator:
    started: list[object] = []

    def _start(api: list[StandIn | int], gateways: list[StandIn]) -> LoadBalancer:
        ports = [a if isinstance(a, int) else a.port for a in api]
        lb = LoadBalancer(nginx, tmp_path, ports, [g.port for g in gateways])
        started.extend([lb, *(a for a in api if isinstance(a, StandIn)), *gateways])
        return lb

    yield _start
    for thing in started:
        thing.stop() if isinstance(thing, LoadBalancer) else thing.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_503_comes_back_after_one_call_timeout(start, method: str) -> None:
    # Two api replicas, no storage worker: each answers 503 after DELAY.
    apis = [StandIn(_answer_503_late), StandIn(_answer_503_late)]
    lb = start(apis, [StandIn(_gateway)])
    status, elapsed = lb.request(method)
    assert status == 503
    assert DELAY <= elapsed < DELAY * 1.6, f"{elapsed:.2f}s: nginx asked a second replica"
    assert sum(a.requests for a in apis) == 1


def test_a_replica_that_refuses_connections_is_skipped(start) -> None:
    # A stopping or restarting replica: nothing listens on its port. Every
    # request still gets the other replica's answer.
    good = StandIn(_answer_200)
    lb = start([_free_port(), good], [StandIn(_gateway)])
    for method in ("GET", "GET", "POST", "GET"):
        status, _ = lb.request(method)
        assert status == 200, method
    assert good.requests == 4


def test_new_websockets_go_to_the_gateway_with_the_fewest(start) -> None:
    gateways = [StandIn(_gateway) for _ in range(3)]
    lb = start([StandIn(_answer_200)], gateways)
    held = []
    for _ in range(9):
        held.append(lb.websocket())
        # Plain requests in between must not skew the websockets' spread.
        assert lb.plain() == 200
    _wait_for(lambda: [g.open for g in gateways] == [3, 3, 3],
              lambda: f"open websockets per gateway: {[g.open for g in gateways]}")
    # Clients of the first gateway leave (a restart, a network blip): the
    # next new connections go there until the counts are even again.
    first = [conn for conn in held if _gateway_of(conn, gateways) is gateways[0]]
    assert len(first) == 3
    for conn in first:
        conn.close()
    _wait_for(lambda: gateways[0].open == 0, lambda: "nginx kept the closed websockets")
    for _ in range(3):
        held.append(lb.websocket())
    _wait_for(lambda: [g.open for g in gateways] == [3, 3, 3],
              lambda: f"open websockets per gateway: {[g.open for g in gateways]}")
    for conn in held:
        conn.close()


def _gateway_of(conn: socket.socket, gateways: list[StandIn]) -> StandIn:
    conn.sendall(b"?")
    port = int(conn.recv(64))
    return next(g for g in gateways if g.port == port)


def _wait_for(condition, message, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message()
        time.sleep(0.02)


def test_stub_status_for_a_scraper_and_no_metrics_proxying(start) -> None:
    # nginx's own counters on its operator port, for nginx-prometheus-exporter;
    # everything else there is 404. /metrics on the REST port goes to an api
    # replica like any path (the api answers it as an unknown route): nginx
    # adds no metrics route of its own to the public port.
    api = StandIn(_answer_200)
    lb = start([api], [StandIn(_gateway)])
    status = requests.get(f"http://127.0.0.1:{lb.status_port}/stub_status", timeout=10)
    assert status.status_code == 200 and "Active connections" in status.text
    assert requests.get(f"http://127.0.0.1:{lb.status_port}/metrics",
                        timeout=10).status_code == 404
    assert lb.request("GET", "/metrics")[0] == 200 and api.requests == 1

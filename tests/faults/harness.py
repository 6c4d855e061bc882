"""The fault tests' shared harness: load, ledger, invariant checker, fault injectors.

A scenario starts Herald with ``herald.testing.topology`` (processes on the
machine's RabbitMQ, PostgreSQL and Redis), runs a steady load against it
with ``Producer`` and ``Consumer`` threads while a fault is injected, then
asks ``check`` whether Herald kept its promise:

- every acknowledged post (201) was consumed, is still in the queue, or is
  in its dead-letter queue (at-least-once: nothing acknowledged is lost);
- no message was held by two consumers inside one claim window (a second
  claim of a message that certainly started before the first claim could
  have expired is a double claim);
- what was consumed has the body that was acknowledged;
- duplicates (a message consumed more than once) are counted, not forbidden.

Every producer and consumer writes what it saw into one ``Ledger``; the
checker only reads the ledger and the queue's final content, so a unit
test can feed it fabricated records and see it catch a loss.

Fault injectors never touch the machine's shared services (other tests
and people use them): ``BrokerLink`` is a TCP forwarder to RabbitMQ that
the test can cut; a private ``redis-server`` (``start_private_redis``) is
what a test may SIGSTOP; PostgreSQL backends are terminated only in the
test's own database (``terminate_backends``).

Durations: ``fault_seconds()`` is the load phase of a scenario, 12 s by
default so that the whole suite stays fast; ``HERALD_FAULT_SECONDS=120``
makes a manual soak.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import statistics
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
import sqlalchemy as sa
import websocket

from herald.testing import polling
from herald.testing.topology import Service, Topology, free_port

DEFAULT_FAULT_SECONDS = 12.0
# Claims of the consumers: the minimum ttl. A double claim is a second claim
# of a message while the first one (60 s) is certainly still live.
CLAIM_TTL = 60
CLAIM_GRACE = 60


def fault_seconds(default: float = DEFAULT_FAULT_SECONDS) -> float:
    """How long a scenario's load phase runs (``HERALD_FAULT_SECONDS``)."""
    return float(os.environ.get("HERALD_FAULT_SECONDS", default))


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def message_id_of(href: str) -> str:
    return href.split("?", 1)[0].rsplit("/", 1)[1]


# -- the ledger -------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """A post the API acknowledged (201)."""

    message_id: str
    body_hash: str
    producer: str
    at: float  # wall clock (time.time()) of the 201


@dataclass(frozen=True)
class Take:
    """A message a consumer got in a claim, and what became of it."""

    message_id: str
    body_hash: str
    consumer: str
    claim_id: str
    claim_sent: float  # wall clock when the claim request was sent
    claim_received: float  # ... and when its 201 arrived
    ttl: int
    deleted: bool  # the delete with the claim id answered 204


@dataclass
class Ledger:
    """Everything the load threads saw. Thread-safe appends."""

    acks: list[Ack] = field(default_factory=list)
    takes: list[Take] = field(default_factory=list)
    # status code (or "error" for no HTTP answer) -> count, per operation
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    # (wall clock, seconds) of every answer slower than SLOW_ANSWER
    slow: list[tuple[str, float, float]] = field(default_factory=list)
    # wall clock of every successful (2xx) answer, in arrival order
    successes: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ack(self, ack: Ack) -> None:
        with self._lock:
            self.acks.append(ack)

    def take(self, take: Take) -> None:
        with self._lock:
            self.takes.append(take)

    def answer(self, operation: str, status: int | None, seconds: float) -> None:
        key = "error" if status is None else str(status)
        with self._lock:
            self.statuses.setdefault(operation, Counter())[key] += 1
            self.latencies.setdefault(operation, []).append(seconds)
            if seconds > SLOW_ANSWER:
                self.slow.append((operation, time.time(), seconds))
            if status is not None and 200 <= status < 300:
                self.successes.append(time.time())

    def count(self, operation: str, status: str) -> int:
        with self._lock:
            return self.statuses.get(operation, Counter())[status]

    def ack_times(self) -> list[float]:
        with self._lock:
            return sorted(a.at for a in self.acks)


# An answer slower than this while a fault is on counts as "hanging".
SLOW_ANSWER = 10.0


# -- the invariant checker ----------------------------------------------------


@dataclass
class Verdict:
    acknowledged: int
    consumed: int  # distinct acknowledged messages consumed (deleted or taken)
    remaining: int  # acknowledged, not consumed, still in the queue
    in_dlq: int
    lost: list[str]
    double_claims: list[tuple[str, str, str]]  # (message id, first claim, second claim)
    duplicates: int  # takes beyond the first of a message
    corrupted: list[str]  # consumed with another body than acknowledged
    unacknowledged_consumed: int  # stored although the poster got no 201

    def figures(self) -> dict[str, Any]:
        return {"acknowledged": self.acknowledged, "consumed": self.consumed,
                "remaining": self.remaining, "in_dlq": self.in_dlq,
                "lost": len(self.lost), "double_claims": len(self.double_claims),
                "duplicates": self.duplicates, "corrupted": len(self.corrupted),
                "unacknowledged_consumed": self.unacknowledged_consumed}

    def assert_ok(self) -> None:
        assert not self.lost, f"{len(self.lost)} acknowledged message(s) lost: {self.lost[:10]}"
        assert not self.double_claims, f"double claims: {self.double_claims[:10]}"
        assert not self.corrupted, f"bodies changed: {self.corrupted[:10]}"


def check(ledger: Ledger, still_queued: dict[str, str],
          in_dlq: dict[str, str] | None = None) -> Verdict:
    """Hold the ledger against the queue's final content.

    ``still_queued`` / ``in_dlq``: message id -> body hash of what the
    queue and its dead-letter queue still hold (claimed or not).
    """
    in_dlq = in_dlq or {}
    acked = {a.message_id: a for a in ledger.acks}
    by_message: dict[str, list[Take]] = {}
    for take in sorted(ledger.takes, key=lambda t: t.claim_sent):
        by_message.setdefault(take.message_id, []).append(take)

    lost = [mid for mid in acked
            if mid not in by_message and mid not in still_queued and mid not in in_dlq]
    corrupted = [t.message_id for t in ledger.takes
                 if t.message_id in acked and t.body_hash != acked[t.message_id].body_hash]
    corrupted += [mid for mid, h in (*still_queued.items(), *in_dlq.items())
                  if mid in acked and h != acked[mid].body_hash]

    double_claims = []
    for mid, takes in by_message.items():
        for first, second in zip(takes, takes[1:], strict=False):
            if first.claim_id == second.claim_id:
                continue  # the same claim seen twice is not two holders
            # The first claim took effect after first.claim_sent, so it was
            # live until at least first.claim_sent + ttl; the second took
            # effect before second.claim_received. Only a certain overlap
            # counts (client clocks cannot see more precisely).
            if second.claim_received < first.claim_sent + first.ttl:
                double_claims.append((mid, first.claim_id, second.claim_id))

    consumed = sum(1 for mid in acked if mid in by_message)
    return Verdict(
        acknowledged=len(acked),
        consumed=consumed,
        remaining=sum(1 for mid in acked if mid not in by_message and mid in still_queued),
        in_dlq=sum(1 for mid in acked if mid not in by_message and mid in in_dlq),
        lost=lost,
        double_claims=double_claims,
        duplicates=sum(len(takes) - 1 for takes in by_message.values()),
        corrupted=corrupted,
        unacknowledged_consumed=sum(1 for mid in by_message if mid not in acked),
    )


# -- HTTP load ------------------------------------------------------------------


class Client:
    """One HTTP session with Herald's headers (a producer or a consumer)."""

    def __init__(self, url: str, project: str, timeout: float = 15.0) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Client-ID": str(uuid.uuid4()), "X-Project-ID": project})

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.url}{path}", **kwargs)


class LoadThread(threading.Thread):
    """Runs ``step()`` until stopped; records every answer in the ledger."""

    def __init__(self, name: str, ledger: Ledger) -> None:
        super().__init__(name=name, daemon=True)
        self.ledger = ledger
        self.stopping = threading.Event()
        self.crashed: BaseException | None = None

    def timed(self, operation: str, call: Any) -> requests.Response | None:
        started = time.monotonic()
        try:
            response = call()
        except requests.RequestException:
            response = None
        self.ledger.answer(operation, response.status_code if response is not None else None,
                           time.monotonic() - started)
        return response

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not self.step():
                    self.stopping.wait(0.05)  # nothing done: do not spin
        except BaseException as exc:  # reported by stop_load
            self.crashed = exc

    def step(self) -> bool:
        raise NotImplementedError


class Producer(LoadThread):
    """Posts batches of messages; records the acknowledged ones."""

    def __init__(self, name: str, ledger: Ledger, client: Client, queue: str,
                 batch: int = 2) -> None:
        super().__init__(name, ledger)
        self.client = client
        self.queue = queue
        self.batch = batch
        self.seq = 0

    def step(self) -> bool:
        bodies = []
        for _ in range(self.batch):
            bodies.append({"producer": self.name, "seq": self.seq,
                           "nonce": uuid.uuid4().hex[:8]})
            self.seq += 1
        response = self.timed("post", lambda: self.client.request(
            "POST", f"/v2/queues/{self.queue}/messages",
            json={"messages": [{"body": b, "ttl": 3600} for b in bodies]}))
        if response is None or response.status_code != 201:
            return False
        now = time.time()
        for body, href in zip(bodies, response.json()["resources"], strict=True):
            self.ledger.ack(Ack(message_id_of(href), body_hash(body), self.name, now))
        return True


class Consumer(LoadThread):
    """Claims, then deletes each claimed message with its claim id."""

    def __init__(self, name: str, ledger: Ledger, client: Client, queue: str,
                 limit: int = 10) -> None:
        super().__init__(name, ledger)
        self.client = client
        self.queue = queue
        self.limit = limit

    def step(self) -> bool:
        sent = time.time()
        response = self.timed("claim", lambda: self.client.request(
            "POST", f"/v2/queues/{self.queue}/claims?limit={self.limit}",
            json={"ttl": CLAIM_TTL, "grace": CLAIM_GRACE}))
        received = time.time()
        if response is None or response.status_code != 201:
            return False
        for message in response.json()["messages"]:
            claim_id = message["href"].rsplit("claim_id=", 1)[1]
            mid = message["id"]
            deleted = self.timed("delete", lambda mid=mid, claim_id=claim_id:
                                 self.client.request(
                                     "DELETE", f"/v2/queues/{self.queue}/messages/{mid}"
                                     f"?claim_id={claim_id}"))
            self.ledger.take(Take(mid, body_hash(message["body"]), self.name, claim_id,
                                  sent, received, CLAIM_TTL,
                                  deleted is not None and deleted.status_code == 204))
        return True


@dataclass
class Load:
    ledger: Ledger
    threads: list[LoadThread]
    started: float = field(default_factory=time.time)

    def stop(self, timeout: float = 30.0) -> None:
        for thread in self.threads:
            thread.stopping.set()
        for thread in self.threads:
            thread.join(timeout)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, f"load threads stuck in a request: {stuck}"
        crashed = [(t.name, t.crashed) for t in self.threads if t.crashed]
        assert not crashed, f"load threads crashed: {crashed}"


def start_load(url: str, project: str, queue: str, producers: int = 2,
               consumers: int = 3, ledger: Ledger | None = None,
               consumer_url: str | None = None) -> Load:
    ledger = ledger or Ledger()
    threads: list[LoadThread] = [
        Producer(f"producer-{i}", ledger, Client(url, project), queue)
        for i in range(producers)
    ] + [
        Consumer(f"consumer-{i}", ledger, Client(consumer_url or url, project), queue)
        for i in range(consumers)
    ]
    for thread in threads:
        thread.start()
    return Load(ledger, threads)


def queue_content(client: Client, queue: str, ids: list[str],
                  deadline_seconds: float = 60.0) -> dict[str, str]:
    """Message id -> body hash of those of ``ids`` still in ``queue``.

    Asks by id, 20 at a time (claimed messages included); retries 503s for
    a while, because the service may still be recovering from the fault.
    """
    found: dict[str, str] = {}
    deadline = time.monotonic() + deadline_seconds
    for start in range(0, len(ids), 20):
        chunk = ids[start:start + 20]
        while True:
            response = client.request("GET", f"/v2/queues/{queue}/messages",
                                      params={"ids": ",".join(chunk)})
            if response.status_code in (200, 404):
                break
            assert time.monotonic() < deadline, (
                f"could not read the queue back: {response.status_code} {response.text}")
            time.sleep(0.5)
        if response.status_code == 200:
            for message in response.json()["messages"]:
                found[message["id"]] = body_hash(message["body"])
    return found


def verify(ledger: Ledger, client: Client, queue: str, dlq: str | None = None) -> Verdict:
    """The invariant check against what the queue (and DLQ) holds now."""
    taken = {t.message_id for t in ledger.takes}
    missing = [a.message_id for a in ledger.acks if a.message_id not in taken]
    still = queue_content(client, queue, missing)
    in_dlq = queue_content(client, dlq, [m for m in missing if m not in still]) if dlq else {}
    return check(ledger, still, in_dlq)


# -- figures ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def throughput_recovery(ack_times: list[float], fault_end: float,
                        baseline_rate: float, window: float = 1.0) -> float | None:
    """Seconds after ``fault_end`` until acknowledgements run at half the
    baseline rate again (over a ``window``-second sliding window); None if
    they never do."""
    after = [t for t in ack_times if t >= fault_end]
    needed = max(1, int(baseline_rate * window * 0.5))
    for i in range(len(after)):
        j = i + needed - 1
        if j < len(after) and after[j] - after[i] <= window:
            return after[j] - fault_end
    return None


def longest_stall(ledger: Ledger, start: float, end: float) -> float:
    """The longest time (s) between two successful answers, of any
    operation, from ``start`` to ``end`` (wall clock): how long every client
    waited for nothing."""
    with ledger._lock:
        times = sorted(t for t in ledger.successes if start <= t <= end)
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def failed(ledger: Ledger) -> dict[str, int]:
    """Requests that did not succeed, by kind: 5xx status, or no answer."""
    out: Counter[str] = Counter()
    with ledger._lock:
        for counter in ledger.statuses.values():
            for status, n in counter.items():
                if status == "error":
                    out["no answer (reset)"] += n
                elif status.startswith("5"):
                    out[status] += n
    return dict(out)


def rate(ack_times: list[float], start: float, end: float) -> float:
    n = sum(1 for t in ack_times if start <= t < end)
    return n / max(0.001, end - start)


def report(name: str, tmp_path: Path, ledger: Ledger, verdict: Verdict,
           **extra: Any) -> dict[str, Any]:
    """Print the scenario's figures and write them to ``<tmp>/figures.json``."""
    figures: dict[str, Any] = {"scenario": name, **verdict.figures()}
    figures["statuses"] = {op: dict(c) for op, c in ledger.statuses.items()}
    figures["latency_p50_p99_max"] = {
        op: [round(x, 3) if x is not None else None
             for x in (percentile(v, 50), percentile(v, 99), max(v) if v else None)]
        for op, v in ledger.latencies.items()}
    figures["answers_over_10s"] = len(ledger.slow)
    figures.update(extra)
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nFAULT FIGURES {name}: {json.dumps(figures, default=str)}\n({path})")
    return figures


# -- websocket subscribers ------------------------------------------------------


class WSListener(threading.Thread):
    """A websocket client that subscribes to the queue and fails over."""

    def __init__(self, urls: list[str], project: str, queue: str) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.project, self.queue = project, queue
        self.stopping = threading.Event()
        self.received: list[tuple[str, float]] = []  # (gateway url, time)
        self.reconnected_at: float | None = None
        self.errors: list[str] = []

    def _subscribe(self, url: str) -> websocket.WebSocket:
        ws = websocket.create_connection(url, timeout=5)
        ws.send(json.dumps({"action": "subscription_create", "body": {"queue_name": self.queue},
                            "headers": {"Client-ID": str(uuid.uuid4()),
                                        "X-Project-ID": self.project}}))
        while True:  # pushes may arrive before the reply
            frame = json.loads(ws.recv())
            if "headers" in frame and "request" in frame:
                assert frame["headers"]["status"] == 201, frame
                return ws

    def run(self) -> None:
        index = 0
        ws = self._subscribe(self.urls[index])
        while not self.stopping.is_set():
            try:
                frame = json.loads(ws.recv())
                if frame.get("Message_Type") == "Notification":
                    self.received.append((self.urls[index], time.time()))
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as exc:
                # The gateway is gone: the next one in the list.
                self.errors.append(repr(exc))
                index = min(index + 1, len(self.urls) - 1)
                try:
                    ws = self._subscribe(self.urls[index])
                    self.reconnected_at = time.time()
                except (websocket.WebSocketException, OSError) as again:
                    self.errors.append(repr(again))
                    time.sleep(0.2)
        ws.close()


# -- fault injectors ---------------------------------------------------------------


class BrokerLink:
    """A TCP forwarder to the machine's RabbitMQ that the test can cut.

    Stopping the real broker would disturb everything else on the machine;
    cutting the only path to it looks the same to the processes behind the
    link. ``close()`` stops listening and resets every forwarded connection;
    ``open()`` listens again on the same port.

    ``go_silent()`` / ``come_back()`` model a broker host that dies without a
    word and reboots: while silent, nothing is accepted and the bytes of the
    existing connections vanish (no FIN, no RST); once back, new
    connections work and an old one is reset as soon as its peer sends on
    it, as a rebooted host answers a connection it no longer knows.
    """

    def __init__(self, target_port: int = 5672) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._silent = False
        self._epoch = 0  # incremented by come_back(): older connections are stale

    @property
    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    def open(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        with self._lock:
            self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            sockets, self._sockets = self._sockets, []
        if server is not None:
            _stop_listening(server)
        for sock in sockets:
            # shutdown() first: close() alone does not end the recv() a pipe
            # thread is blocked in, so the kernel would keep the connection
            # open and the peer would send into a silent black hole instead
            # of seeing the broker go away. Then RST (linger 0), as a
            # crashed broker's host would answer.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()

    def go_silent(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self._silent = True
        if server is not None:
            _stop_listening(server)

    def come_back(self) -> None:
        with self._lock:
            self._silent = False
            self._epoch += 1
        self.open()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:  # cut while connecting
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                epoch = self._epoch
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst, epoch),
                                 daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, epoch: int) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if self._epoch != epoch:  # the broker "rebooted": reset, both ways
                    for sock in (src, dst):
                        with contextlib.suppress(OSError):
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                            struct.pack("ii", 1, 0))
                            sock.close()
                    return
                if self._silent:
                    continue  # the bytes vanish
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _stop_listening(server: socket.socket) -> None:
    # close() alone does not wake the thread blocked in accept(): the kernel
    # keeps the socket listening until accept() returns, so the port could
    # not be bound again when the "broker" comes back. shutdown() wakes it.
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)
    server.close()


def start_private_redis(topology: Topology, name: str = "redis") -> tuple[Service, str]:
    """A redis-server of the test's own (it may SIGSTOP it); (service, url)."""
    port = free_port()
    service = topology.start_program(name, [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--daemonize", "no"])

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    service.wait_for(ready, "redis PONG", timeout=15)
    return service, f"redis://127.0.0.1:{port}"


def admin_dsn(database_url: str) -> tuple[str, str]:
    """(psycopg DSN of the test's database, its name) from its SQLAlchemy URL."""
    url = sa.make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False), url.database


def terminate_backends(database_url: str) -> int:
    """pg_terminate_backend every session of the test's own database (not ours)."""
    dsn, name = admin_dsn(database_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()
    return int(row[0]) if row else 0


def idle_in_transaction(database_url: str, older_than: float = 0.0) -> list[dict[str, Any]]:
    """Sessions of the test's database idle inside a transaction (and their locks)."""
    dsn, name = admin_dsn(database_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.pid, a.state, extract(epoch FROM now() - a.state_change), a.query, "
            "(SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid) "
            "FROM pg_stat_activity a WHERE a.datname = %s AND a.pid <> pg_backend_pid() "
            "AND a.state LIKE 'idle in transaction%%' "
            "AND now() - a.state_change > make_interval(secs => %s)",
            (name, older_than)).fetchall()
    return [{"pid": r[0], "state": r[1], "seconds": float(r[2]), "query": r[3],
             "locks": r[4]} for r in rows]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll until true (``herald.testing.polling.wait_until``); returns the
    seconds it took, which the scenarios report as recovery times."""
    started = time.monotonic()
    polling.wait_until(predicate, timeout, interval, what=what)
    return time.monotonic() - started

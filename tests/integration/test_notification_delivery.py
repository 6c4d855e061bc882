"""Notification delivery by an outbox dispatcher, against real local receivers.

A storage endpoint on SQLite, the notifier stage, and one ``Dispatcher``
owning every queue deliver to an HTTP receiver (``http.server`` on
127.0.0.1, one thread per request) and an SMTP server (aiosmtpd). Retry
delays are scaled down (``retry_delay_scale``) so the retry procedure runs in
milliseconds.
"""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from herald.common import config
from herald.common.context import RequestContext, current_request_id
from herald.common.rpc.ws_push import WSPushClient
from herald.storage import migrations
from herald.storage.dispatcher import RECORD_INTERVAL, Dispatcher
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database, make_engine
from herald.storage.outbox import OutboxController
from herald.testing.polling import wait_until
from tests.webhook_receiver import LocalWebhookServer


class Receiver(LocalWebhookServer):
    """Records every POST; the path picks the behaviour (ok, flaky-N, hang, fail)."""

    def __init__(self, keep_alive: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        super().__init__(keep_alive=keep_alive)

    def answer(self, path: str, body: bytes, request: Any) -> int:
        with self.lock:
            n = self.counts.get(path, 0) + 1
            self.counts[path] = n
            self.requests.append({"path": path, "body": body,
                                  "headers": dict(request.headers), "at": time.monotonic()})
        if path.startswith("/hang"):
            self.release.wait(30)
        elif path.startswith("/flaky"):
            return 500 if n <= 3 else 200
        elif path.startswith("/fail"):
            return 503
        elif path.startswith("/gone"):
            return 404
        return 200

    def received(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.release.set()
        super().close()


class Stack:
    def __init__(self, tmp: Path, owns: Any = lambda p, q: True, *,
                 start_dispatcher: bool = True, **notification: Any) -> None:
        self.conf = config.load([], conf=cfg.ConfigOpts())
        url = f"sqlite:///{tmp}/h.sqlite"
        migrations.upgrade(url)
        self.db = Database(make_engine(url, pool_size=8))
        options = {"dispatch_interval": 0.05, "retry_delay_scale": 0.01,
                   "delivery_timeout": 2.0, **notification}
        for name, value in options.items():
            self.conf.set_override(name, value, group="notification")
        self.endpoint = StorageEndpoint(self.db, self.conf)
        self.dispatcher = Dispatcher(self.db, self.conf, "test-member", owns,
                                     WSPushClient(self.conf, use_rpc=False), lambda g: None)
        if start_dispatcher:
            self.dispatcher.start()
        self.ctxt = RequestContext(project_id=f"p-{uuid.uuid4().hex[:8]}",
                                   client_id=str(uuid.uuid4()))

    def subscribe(self, subscriber: str, queue: str = "q", **options: Any) -> str:
        return self.endpoint.subscription_create(
            self.ctxt, queue=queue, subscriber=subscriber, ttl=None,
            options=options or None)["subscription_id"]

    def post(self, bodies: list[Any], queue: str = "q", ttl: int = 120) -> list[str]:
        return self.endpoint.message_post(self.ctxt, queue=queue, body_size=10,
                                          messages=[{"body": b, "ttl": ttl} for b in bodies])

    def delivery(self, sid: str, queue: str = "q") -> dict[str, Any]:
        return self.endpoint.subscription_get(self.ctxt, queue=queue,
                                              subscription_id=sid)["delivery"]

    def close(self) -> None:
        self.dispatcher.stop()
        self.db.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.close()


def test_webhook_gets_the_exact_payload_and_headers(stack, receiver):
    stack.subscribe(receiver.url + "/ok", post_headers={"X-Custom": "yes",
                                                        "Content-Type": "application/json"})
    stack.subscribe(receiver.url + "/templated",
                    post_data='{"messages": [{"body": "$zaqar_message$", "ttl": 60}]}')
    stack.post([{"event": "BackupStarted"}, "second"])
    wait_until(lambda: len(receiver.received("/ok")) == 2
               and len(receiver.received("/templated")) == 2, what="4 deliveries")
    ok = receiver.received("/ok")
    assert [r["body"] for r in ok] == [
        b'{"ttl": 120, "body": {"event": "BackupStarted"}, "Message_Type": "Notification", '
        b'"queue_name": "q"}',
        b'{"ttl": 120, "body": "second", "Message_Type": "Notification", "queue_name": "q"}',
    ]
    assert ok[0]["headers"]["Content-Type"] == "application/json"
    assert ok[0]["headers"]["X-Custom"] == "yes"
    templated = json.loads(receiver.received("/templated")[0]["body"])
    assert templated == {"messages": [{"body": {"ttl": 120, "body": {"event": "BackupStarted"},
                                                "Message_Type": "Notification",
                                                "queue_name": "q"}, "ttl": 60}]}


def test_rows_this_process_committed_go_out_at_once_whoever_owns_the_queue(tmp_path,
                                                                           receiver):
    """The post's own worker delivers (the signal names the queue): no wait
    for the owner's poll, here a 30 s one by a dispatcher owning nothing."""
    stack = Stack(tmp_path, owns=lambda p, q: False, dispatch_interval=30.0)
    try:
        stack.subscribe(receiver.url + "/ok")
        time.sleep(0.2)  # the dispatcher is in its 30 s wait
        posted = time.monotonic()
        stack.post(["now"])
        wait_until(lambda: len(receiver.received("/ok")) == 1, timeout=5,
                   what="the delivery")
        assert receiver.received("/ok")[0]["at"] - posted < 5
    finally:
        stack.close()


def test_rows_posted_in_this_process_need_no_lease_statement(tmp_path, receiver):
    """The post's rows go in leased to this process's dispatcher and are
    handed to it at the commit: delivered without a lease statement, and
    held by it (here while the subscriber hangs) as a leased row is."""
    stack = Stack(tmp_path, owns=lambda p, q: False, dispatch_interval=30.0)
    leases: list[Any] = []
    lease = stack.dispatcher._outbox.lease
    stack.dispatcher._outbox.lease = lambda *args, **kwargs: leases.append(args) or lease(
        *args, **kwargs)
    try:
        stack.subscribe(receiver.url + "/hang")
        sid = stack.subscribe(receiver.url + "/ok")
        time.sleep(0.2)  # the dispatcher is in its 30 s wait
        stack.post(["now"])
        wait_until(lambda: stack.delivery(sid)["delivered"] == 1, timeout=5,
                   what="the delivery, recorded")
        wait_until(lambda: len(receiver.received("/hang")) == 1, timeout=5,
                   what="the hanging delivery in flight")
        hanging = [row for row in OutboxController(stack.db).rows()
                   if row.subscriber.endswith("/hang")]
        assert [(row.state, row.lease_owner) for row in hanging] == [
            ("pending", "test-member")]
        assert leases == []
    finally:
        receiver.release.set()
        stack.close()


def test_posts_to_one_subscriber_are_delivered_concurrently(tmp_path, receiver):
    """Two posts' notifications to one (slow) subscriber overlap instead of
    queueing behind each other's round trip; within a post the order holds
    (notifications.md section 2: "in request order within that recipient's
    task"): a post's second message goes out only once its first was answered."""
    # A delivery timeout well above how long a loaded machine takes to start
    # the second post's delivery, so the hanging first one is still the first
    # attempt when the second arrives (a retry would be legitimate, but it
    # is not what this test is about).
    stack = Stack(tmp_path, delivery_timeout=8.0)
    try:
        _two_posts_overlap(stack, receiver)
    finally:
        stack.close()


def test_posts_leased_together_are_delivered_concurrently(tmp_path, receiver):
    """Both posts committed before the dispatcher listens (a loaded machine
    starts it late), so one lease takes their rows together: the two posts,
    made with one request context and so one request id, are still served
    as two. Keyed by request id alone, b1 waited for a1's round trip."""
    stack = Stack(tmp_path, delivery_timeout=8.0, start_dispatcher=False)
    try:
        _two_posts_overlap(stack, receiver, start_dispatcher=True)
    finally:
        stack.close()


def _two_posts_overlap(stack: Stack, receiver: Receiver,
                       start_dispatcher: bool = False) -> None:
    stack.subscribe(receiver.url + "/hang")
    stack.post(["a1", "a2"])
    stack.post(["b1"])
    if start_dispatcher:
        stack.dispatcher.start()

    def bodies() -> list[str]:
        return [json.loads(r["body"])["body"] for r in receiver.received("/hang")]

    # Both posts' first messages reach the hanging subscriber before either is
    # answered. a1 may arrive more than once: on a loaded machine its 2 s
    # delivery timeout can pass first, and a retry is at least once.
    wait_until(lambda: {"a1", "b1"} <= set(bodies()), timeout=15,
               what="both posts' deliveries in flight together")
    assert "a2" not in bodies()  # a post's second message waits for its first
    released_at = time.monotonic()
    receiver.release.set()
    wait_until(lambda: "a2" in bodies(), timeout=10, what="a2 delivered")
    first_a2 = next(r for r in receiver.received("/hang")
                    if json.loads(r["body"])["body"] == "a2")
    # Sent after a1 was answered (a1 hung until the release), never alongside it.
    assert first_a2["at"] >= released_at


@pytest.mark.parametrize("idle_timeout, connections", [(15.0, 1), (0.0, 5)])
def test_deliveries_to_one_subscriber_reuse_its_connection(tmp_path, idle_timeout,
                                                           connections):
    """Keep-alive: five notifications, one after the other, go over one
    connection; with ``webhook_idle_timeout = 0`` each gets its own."""
    receiver = Receiver(keep_alive=True)
    stack = Stack(tmp_path, webhook_idle_timeout=idle_timeout)
    try:
        sid = stack.subscribe(receiver.url + "/ok")
        for n in range(5):
            stack.post([n])
            wait_until(lambda n=n: len(receiver.received("/ok")) == n + 1, what="delivery")
        wait_until(lambda: stack.delivery(sid)["delivered"] == 5, what="5 recorded")
        assert [json.loads(r["body"])["body"] for r in receiver.received("/ok")] == [
            0, 1, 2, 3, 4]
        assert receiver.connections == connections
    finally:
        stack.close()
        receiver.close()


def test_successes_are_recorded_in_groups_in_delivery_order(stack, receiver):
    """A stream of deliveries costs at most one recording transaction per
    RECORD_INTERVAL (plus the first), each a group, and a post's rows are
    recorded in its order; every delivery ends up recorded."""
    groups: list[tuple[float, list[int]]] = []
    record = stack.dispatcher._outbox.record_deliveries

    def counting(delivered: list[Any], owner: str) -> None:
        groups.append((time.monotonic(), [item.row.seq for item in delivered]))
        record(delivered, owner)

    stack.dispatcher._outbox.record_deliveries = counting
    sid = stack.subscribe(receiver.url + "/ok")
    started = time.monotonic()
    stack.post(list(range(10)))  # ten rows of one post, served in order
    for n in range(20):
        stack.post([f"single-{n}"])
    wait_until(lambda: stack.delivery(sid)["delivered"] == 30, what="30 recorded")
    elapsed = groups[-1][0] - started
    assert len(groups) <= 2 + elapsed / RECORD_INTERVAL, (len(groups), elapsed)
    assert len(groups) < 30  # grouped, not one transaction per delivery
    recorded = [seq for _, seqs in groups for seq in seqs]
    assert len(recorded) == len(set(recorded)) == 30
    first_post = sorted(row.seq for row in OutboxController(stack.db).rows())[:10]
    assert [seq for seq in recorded if seq in first_post] == first_post


def test_500_three_times_then_200_is_retried_and_recorded(stack, receiver):
    immediate = stack.subscribe(receiver.url + "/flaky-a")
    delayed = stack.subscribe(receiver.url + "/flaky-b",
                              _retry_policy={"retries_with_no_delay": 1})
    stack.post(["x"])
    wait_until(lambda: receiver.counts.get("/flaky-a") == 4
               and receiver.counts.get("/flaky-b") == 4, what="4 attempts each")
    for sid in (immediate, delayed):
        wait_until(lambda sid=sid: stack.delivery(sid)["delivered"] == 1, what="recorded")
        delivery = stack.delivery(sid)
        assert delivery["attempts"] == 4 and delivery["failed"] == 0
        assert delivery["last_status"] == 200 and delivery["pending"] == 0
        assert delivery["last_success"] is not None
    # phase 2 of the policy spaced the delayed one's retries (5 s x 0.01 scale)
    times = [r["at"] for r in receiver.received("/flaky-b")]
    assert times[2] - times[1] >= 0.04
    rows = OutboxController(stack.db).rows()
    assert sorted(r.attempts for r in rows) == [4, 4]
    assert {r.state for r in rows} == {"delivered"}


def test_exhausted_policy_marks_the_delivery_failed(stack, receiver, caplog):
    sid = stack.subscribe(receiver.url + "/fail",
                          _retry_policy={"retries_with_no_delay": 1, "minimum_delay_retries": 1,
                                         "maximum_delay_retries": 0, "minimum_delay": 1,
                                         "maximum_delay": 11})
    with caplog.at_level(logging.ERROR, logger="herald.storage.dispatcher"):
        stack.post(["x"])
        wait_until(lambda: stack.delivery(sid)["failed"] == 1, what="failed delivery")
    # 1 + 1 immediate + 1 minimum + back-off [1, 6] = 5 attempts
    assert receiver.counts["/fail"] == 5
    delivery = stack.delivery(sid)
    assert delivery["attempts"] == 5 and delivery["last_status"] == 503
    assert delivery["last_error"] == "HTTP 503"
    [row] = OutboxController(stack.db).rows()
    assert row.state == "failed" and row.attempts == 5  # kept for inspection
    assert any("giving up" in r.getMessage() for r in caplog.records)


def test_4xx_is_final(stack, receiver):
    sid = stack.subscribe(receiver.url + "/gone")
    stack.post(["x"])
    wait_until(lambda: stack.delivery(sid)["attempts"] == 1, what="one attempt")
    # No retry is scheduled: the row is done, not pending (a pending row is
    # what the dispatcher would try again), after its one attempt.
    wait_until(lambda: [(r.state, r.attempts) for r in OutboxController(stack.db).rows()]
               == [("delivered", 1)], what="the row final after one attempt")
    assert receiver.counts["/gone"] == 1
    assert stack.delivery(sid)["delivered"] == 1


def test_a_hanging_subscriber_does_not_delay_a_healthy_one(stack, receiver):
    stack.subscribe(receiver.url + "/hang")
    stack.subscribe(receiver.url + "/ok")
    latencies = []
    for n in range(3):
        started = time.monotonic()
        stack.post([n])
        wait_until(lambda n=n: len(receiver.received("/ok")) == n + 1, timeout=5,
                   what="healthy delivery")
        latencies.append(receiver.received("/ok")[-1]["at"] - started)
    assert receiver.received("/hang")  # the other one is stuck in its first request
    assert max(latencies) < 0.5, latencies
    hang_wait = time.monotonic() - receiver.received("/hang")[0]["at"]
    assert hang_wait < 2.0  # still inside its 2 s timeout: it did not hold us up


def test_delivery_logs_carry_the_request_id_of_the_post(stack, receiver):
    seen: list[tuple[str, str]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), current_request_id()))

    handler = Capture(level=logging.INFO)
    logger = logging.getLogger("herald.storage.dispatcher")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        stack.subscribe(receiver.url + "/ok")
        stack.post(["x"])
        wait_until(lambda: any("delivered" in m for m, _ in seen), what="delivery log")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert [rid for m, rid in seen if "delivered" in m] == [stack.ctxt.request_id]


def test_mail_reaches_the_smtp_server(tmp_path):
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self) -> None:
            self.mails: list[tuple[str, list[str], bytes]] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.mails.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
            return "250 OK"

    sink = Sink()
    with socket.socket() as probe:  # aiosmtpd's readiness check needs a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        s = Stack(tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                  smtp_sender="herald@example.com")
        try:
            s.subscribe("mailto:ops@example.com?Subject=Queue%20news")
            s.subscribe("mailto:other@example.com", subject="From options",
                        **{"from": "sender@example.com"})
            s.post([{"event": "x"}])
            wait_until(lambda: len(sink.mails) == 2, what="2 mails")
        finally:
            s.close()
    finally:
        controller.stop()
    by_rcpt = {rcpt[0]: (sender, email.message_from_bytes(content))
               for sender, rcpt, content in sink.mails}
    sender, mail = by_rcpt["ops@example.com"]
    assert sender == "herald@example.com"
    assert mail["Subject"] == "Queue news" and mail["To"] == "ops@example.com"
    assert json.loads(mail.get_payload(decode=True)) == {
        "ttl": 120, "body": {"event": "x"}, "Message_Type": "Notification",
        "queue_name": "q"}
    sender, mail = by_rcpt["other@example.com"]
    assert sender == "sender@example.com" and mail["Subject"] == "From options"

"""Failures of a storage worker or of the broker, seen from HTTP clients.

- A storage worker SIGKILLed in the middle of a stream of posts: the API
  keeps serving through the other worker, and every message the API
  acknowledged (201) can still be read.
- No storage worker at all, or an unreachable RabbitMQ: a request answers
  503 with Zaqar's error body within the configured RPC timeout instead of
  hanging, and the API recovers by itself when a worker is back.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import requests

from herald.testing.topology import Topology
from tests.e2e.flows import Rest
from tests.faults.harness import BrokerLink

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

CALL_TIMEOUT = 2.0
# Room for Python, Tornado and the thread pool on top of the RPC timeout on a
# busy 2-core CI machine; a hung call would take far longer than this.
SLACK = 3.0


@dataclass
class Post:
    seq: int
    started: float
    finished: float
    status: int | None  # None: no HTTP answer at all
    message_id: str | None


def _post_stream(rest: Rest, queue: str, until: float, out: list[Post]) -> None:
    """Post one message at a time until ``until`` (monotonic clock)."""
    seq = 0
    while time.monotonic() < until:
        started = time.monotonic()
        status, message_id = None, None
        try:
            response = rest.post(queue, {"seq": seq})
            status = response.status_code
            if status == 201:
                message_id = response.json()["resources"][0].rsplit("/", 1)[1]
        except requests.RequestException:
            pass
        out.append(Post(seq, started, time.monotonic(), status, message_id))
        seq += 1


def test_sigkill_of_one_storage_worker_loses_no_acknowledged_message(
        topology: Topology) -> None:
    # A short timeout: a call stranded on the killed worker fails fast.
    env = {"OS_RPC__CALL_TIMEOUT": "3"}
    victim, survivor, api = topology.distributed(storage_workers=2, apis=1, env=env)
    rest = Rest(api.url, timeout=30)
    queue = f"stream-{uuid.uuid4().hex[:8]}"
    assert rest.create_queue(queue).status_code == 201

    posts: list[Post] = []
    start = time.monotonic()
    poster = threading.Thread(target=_post_stream, args=(rest, queue, start + 8.0, posts),
                              daemon=True)
    poster.start()
    time.sleep(2.0)
    killed_at = time.monotonic()
    victim.send(signal.SIGKILL)
    poster.join(timeout=60)
    assert not poster.is_alive(), "the posting loop hung"
    assert victim.wait(5) == -signal.SIGKILL

    before = [p for p in posts if p.finished < killed_at]
    after = [p for p in posts if p.started > killed_at]
    failed = [p for p in posts if p.status != 201]
    acknowledged = [p for p in posts if p.status == 201]
    print(f"\nposts: {len(posts)} total, {len(before)} before the kill, "
          f"{len(after)} after; {len(failed)} failed "
          f"({sorted({p.status for p in failed}, key=str)})")

    assert before and all(p.status == 201 for p in before), "posts failed before the kill"
    # Only calls already handed to the killed worker may fail (503 after the
    # RPC timeout); with one call in flight at a time that is one or two.
    assert all(p.status == 503 for p in failed), [(p.seq, p.status) for p in failed]
    assert len(failed) <= 3, f"{len(failed)} posts failed around the kill"
    assert sum(p.status == 201 for p in after) >= 10, "too few posts succeeded after the kill"
    assert survivor.running() and api.running()

    # Every acknowledged message is still there, with its body.
    lost = []
    for post in acknowledged:
        response = rest.get_message(queue, post.message_id)
        if response.status_code != 200 or response.json()["body"] != {"seq": post.seq}:
            lost.append((post.seq, post.message_id, response.status_code))
    assert not lost, f"acknowledged messages not readable: {lost}"
    # Posts that timed out may or may not have been stored; nothing else is.
    total = rest.stats(queue)["total"]
    assert len(acknowledged) <= total <= len(posts)


def _assert_503_in_time(rest: Rest, queue: str) -> None:
    started = time.monotonic()
    try:
        response = rest.request("PUT", f"/v2/queues/{queue}", timeout=CALL_TIMEOUT + SLACK)
    except requests.Timeout:
        pytest.fail(f"no answer within {CALL_TIMEOUT + SLACK:.0f} s (call_timeout "
                    f"{CALL_TIMEOUT:.0f} s): the request hangs")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, (response.status_code, response.text)
    assert elapsed < CALL_TIMEOUT + SLACK, f"503 took {elapsed:.1f} s"
    body = response.json()
    assert body["title"] == "Service temporarily unavailable", body
    assert body["description"].endswith("Please try again in a few seconds."), body


def test_503_without_storage_workers_then_recovery(topology: Topology) -> None:
    env = {"OS_RPC__CALL_TIMEOUT": str(CALL_TIMEOUT)}
    # The worker creates the schema itself at start-up (migrate_on_start).
    worker = topology.storage("storage", env)
    api = topology.api("api", env)
    rest = Rest(api.url)
    assert rest.create_queue("before-outage").status_code == 201

    # Every storage worker down: 503 with Zaqar's error body, in time.
    assert worker.stop() == 0, "the storage worker did not stop cleanly on SIGTERM"
    _assert_503_in_time(rest, "during-outage")
    assert rest.request("GET", "/v2/ping").status_code == 503

    # A worker comes back: the same API process serves again by itself.
    topology.storage("storage-again", env)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = rest.create_queue("after-outage").status_code
        if status in (201, 204):
            break
        time.sleep(0.5)
    assert status in (201, 204), f"the API did not recover: last status {status}"
    assert api.running()
    posted = rest.post("after-outage", {"ok": True})
    assert posted.status_code == 201, posted.text
    assert rest.request("GET", "/v2/ping").status_code == 204


def test_503_when_rabbitmq_is_unreachable_then_recovery(topology: Topology) -> None:
    link = BrokerLink()
    env = {"OS_RPC__CALL_TIMEOUT": str(CALL_TIMEOUT)}
    topology.storage("storage", env)
    # Nothing listens on the link's port yet: the api never reaches a broker.
    api = topology.api("api", {**env, "OS_DEFAULT__TRANSPORT_URL":
                               link.url},
                       ready_statuses=None)
    api.wait_for_listen()
    rest = Rest(api.url)
    try:
        _assert_503_in_time(rest, "no-broker")
        # Every request, not only the first: calls must not queue up behind a
        # connection attempt that never ends.
        _assert_503_in_time(rest, "no-broker-again")
        assert api.running()

        # The broker becomes reachable: the same api serves again by itself.
        link.open()
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            status = rest.create_queue("broker-back").status_code
            if status in (201, 204):
                break
            time.sleep(0.5)
        assert status in (201, 204), f"the API did not recover: last status {status}"
        assert rest.post("broker-back", {"ok": True}).status_code == 201
    finally:
        link.close()

"""Issue 26: a dead or paused storage worker, and a restarted api, are invisible to clients.

Three storage workers and two APIs, started once for the module (start-up
is most of a distributed test's time), under a steady load (2 producers, 3
consumers claiming and deleting) on a queue of each test's own; the RPC
timeout is left at its 10 s default so that a call stranded on a worker
would show as a 10 s answer or a 503. The kill and pause scenarios load
``api-2``; the drain scenario stops ``api-1``, so any order works. Each
scenario reports per fault: the requests that failed (5xx, no answer),
the longest stall (the longest time without any successful answer), and
the posts stored although their client got no 201 (target 0).

* ``test_killed_workers_cost_no_client_an_error``: two workers SIGKILLed (and
  restarted) in turn; the edge sees each go from the broker and re-sends
  what it had in flight (``herald.common.rpc.resend``).
* ``test_a_paused_worker_stalls_nobody``: one worker SIGSTOPped for 6 s; it
  holds at most the consumer prefetch of calls, which are re-sent after
  ``[rpc] resend_after``.
* ``test_a_killed_worker_costs_a_pop_or_a_queue_create_no_error``: a
  stopped, then killed worker holds pops and queue creates; each is re-sent
  and answers its one run's reply (``operations.REPLAYED``).
* ``test_a_stopping_api_drains_without_resets``: the api SIGTERMed mid-load
  while its clients fail over to a second one when a connection is refused
  (the request was never sent): every request is answered, none is reset,
  and the stopped api logs no error.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from herald.testing.topology import Backends, Service, Topology
from tests.conftest import RABBIT_URL, REDIS_URL, _create_database, _drop_database
from tests.faults.harness import (
    Client,
    Consumer,
    Ledger,
    Load,
    Producer,
    failed,
    longest_stall,
    percentile,
    report,
    verify,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]

#: Seconds of load before a fault, and after it, to see the usual latency.
CALM = 1.5
#: What "usual" may be over on the machine (shared, 2 cores) at worst; the
#: issue asks for 1 s more than usual, and a call stuck on a paused worker
#: costs [rpc] resend_after (0.5 s).
EXTRA = 1.0


class FailoverClient(Client):
    """A client of several APIs that moves to the next one when a connection
    is refused (the request was never sent: safe for any method)."""

    def __init__(self, urls: list[str], project: str) -> None:
        super().__init__(urls[0], project)
        self.urls = urls

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for url in self.urls:
            self.url = url
            try:
                return super().request(method, path, **kwargs)
            except requests.ConnectionError as exc:
                reason = getattr(exc.args[0] if exc.args else None, "reason", None)
                if not isinstance(reason, urllib3.exceptions.NewConnectionError):
                    raise
        raise requests.ConnectionError(f"no API accepts connections: {self.urls}")


def start(urls: list[str], project: str, queue: str) -> Load:
    ledger = Ledger()
    threads = [Producer(f"producer-{i}", ledger, FailoverClient(urls, project), queue)
               for i in range(2)]
    threads += [Consumer(f"consumer-{i}", ledger, FailoverClient(urls, project), queue)
                for i in range(3)]
    for thread in threads:
        thread.start()
    return Load(ledger, threads)


def stored_unacknowledged(load: Load, client: Client, queue: str, consumed: int) -> int:
    """Posts stored although their client got no 201: messages consumed or
    still in the queue that no producer was given."""
    acked = {a.message_id for a in load.ledger.acks}
    taken = {t.message_id for t in load.ledger.takes}
    extra = 0
    params: dict[str, Any] = {"echo": "true", "include_claimed": "true", "limit": 20}
    while True:
        response = client.request("GET", f"/v2/queues/{queue}/messages", params=params)
        if response.status_code == 204 or not response.json()["messages"]:
            break
        body = response.json()
        extra += sum(1 for m in body["messages"] if m["id"] not in acked | taken)
        params["marker"] = next(link["href"] for link in body["links"]
                                if link["rel"] == "next").split("marker=", 1)[1].split("&")[0]
    return extra + consumed


def usual_latency(load: Load) -> float:
    """The p99 of every answer so far (the calm phase)."""
    with load.ledger._lock:
        latencies = [x for values in load.ledger.latencies.values() for x in values]
    return percentile(latencies, 99) or 0.0


def longest_answer(load: Load) -> float:
    with load.ledger._lock:
        return max((x for values in load.ledger.latencies.values() for x in values),
                   default=0.0)


def figures(name: str, tmp_path: Path, load: Load, client: Client, queue: str,
            fault: tuple[float, float], **extra: Any) -> dict[str, Any]:
    verdict = verify(load.ledger, client, queue)
    verdict.assert_ok()
    result = report(name, tmp_path, load.ledger, verdict,
                    requests_failed=failed(load.ledger),
                    longest_stall_s=round(longest_stall(load.ledger, *fault), 3),
                    longest_answer_s=round(longest_answer(load), 3),
                    stored_unacknowledged=stored_unacknowledged(
                        load, client, queue, verdict.unacknowledged_consumed), **extra)
    assert verdict.acknowledged >= 20 and verdict.consumed >= 10, result
    return result


@dataclass
class Cluster:
    topology: Topology
    workers: list[Service]
    apis: list[Service]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    database = f"herald_test_{uuid.uuid4().hex[:12]}"
    _create_database(database)
    suffix = uuid.uuid4().hex[:8]
    topology = Topology(tmp_path_factory.mktemp("cluster"), Backends(
        transport_url=RABBIT_URL, rpc_topic=f"herald-storage-test-{suffix}",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        coordination_url=f"{REDIS_URL}?namespace=herald-test-{suffix}"))
    try:
        started = topology.distributed(storage_workers=3, apis=2)
        yield Cluster(topology, started[:3], started[3:])
    finally:
        topology.stop_all()
        _drop_database(database)


@pytest.fixture
def topology(cluster: Cluster, request: pytest.FixtureRequest) -> Topology:
    """The module's topology; its logs go with a failed test's report."""
    request.node._herald_topology = cluster.topology
    return cluster.topology


def test_killed_workers_cost_no_client_an_error(cluster: Cluster, topology: Topology,
                                                tmp_path: Path) -> None:
    workers, api = cluster.workers, cluster.apis[1]
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "kills"
    client = Client(api.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201
    load = start([api.url], project, queue)
    try:
        time.sleep(CALM)
        fault_start = time.time()
        log_at = len(api.log())
        for i, victim in enumerate(workers[:2]):
            victim.send(signal.SIGKILL)
            assert victim.wait(10) == -signal.SIGKILL
            # Started again at once; its start-up is part of the outage.
            workers[i] = topology.storage(victim.name, {"OS_STORAGE__MIGRATE_ON_START": "false"},
                                          wait=False)
            time.sleep(1.0)
        fault_end = time.time()
        time.sleep(CALM)
    finally:
        load.stop()
    for worker in workers:
        worker.wait_for_log("RPC server listening on topic")
    result = figures("issue 26: storage workers SIGKILLed", tmp_path, load, client, queue,
                     (fault_start, fault_end), kills=2)
    assert result["requests_failed"] == {}, result
    assert result["stored_unacknowledged"] == 0, result
    # Far from the 10 s call_timeout: the edge re-sent what was lost.
    assert result["longest_answer_s"] < 3.0, result
    assert "re-sending the calls in flight" in api.log()[log_at:], "the broker was not heard"


def test_a_paused_worker_stalls_nobody(cluster: Cluster, topology: Topology,
                                       tmp_path: Path) -> None:
    workers, api = cluster.workers, cluster.apis[1]
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "pause"
    client = Client(api.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201
    load = start([api.url], project, queue)
    paused = workers[0]
    try:
        time.sleep(CALM)
        usual = usual_latency(load)
        fault_start = time.time()
        paused.send(signal.SIGSTOP)
        try:
            time.sleep(6.0)
        finally:
            paused.send(signal.SIGCONT)
        fault_end = time.time()
        time.sleep(0.5)
    finally:
        load.stop()
    result = figures("issue 26: storage worker SIGSTOPped 6 s", tmp_path, load, client, queue,
                     (fault_start, fault_end), usual_p99_s=round(usual, 3))
    assert result["requests_failed"] == {}, result
    assert result["stored_unacknowledged"] == 0, result
    assert result["longest_answer_s"] <= usual + EXTRA, result
    assert result["longest_stall_s"] <= usual + EXTRA, result
    assert paused.running()


def test_a_killed_worker_costs_a_pop_or_a_queue_create_no_error(
        cluster: Cluster, topology: Topology) -> None:
    """Pops and queue creates, whose second run would answer otherwise, sent
    while a worker holds its share of them stopped, then is SIGKILLed: each
    is re-sent and answers as a single run would (201, the messages it took)."""
    workers, api = cluster.workers, cluster.apis[1]
    client = Client(api.url, f"faults-{uuid.uuid4().hex[:8]}")
    posted = client.request("POST", "/v2/queues/pops/messages", json={
        "messages": [{"body": n, "ttl": 300} for n in range(12)]})
    assert posted.status_code == 201
    log_at = len(api.log())
    victim = workers[2]
    victim.send(signal.SIGSTOP)  # takes its share of the calls and answers none
    popped: list[str] = []
    longest = 0.0
    try:
        for n in range(12):
            if n == 6:
                victim.send(signal.SIGKILL)
            started = time.monotonic()
            if n % 2:
                answer = client.request("PUT", f"/v2/queues/made-{n}")
                assert answer.status_code == 201, (n, answer.status_code, answer.text)
            else:
                answer = client.request("DELETE", "/v2/queues/pops/messages",
                                        params={"pop": 2})
                assert answer.status_code == 200, (n, answer.status_code, answer.text)
                popped += [m["id"] for m in answer.json()["messages"]]
            longest = max(longest, time.monotonic() - started)
    finally:
        victim.send(signal.SIGKILL)
        victim.wait(10)
        workers[2] = topology.storage(victim.name, {"OS_STORAGE__MIGRATE_ON_START": "false"},
                                      wait=False)
    # Every message popped once, none lost to a pop that ran twice.
    assert sorted(popped) == sorted(r.rsplit("/", 1)[1] for r in posted.json()["resources"])
    assert longest < 3.0, longest  # far from the 10 s call_timeout
    assert "re-sending storage call" in api.log()[log_at:], "no call was held by the victim"
    workers[2].wait_for_log("RPC server listening on topic")


def test_a_stopping_api_drains_without_resets(cluster: Cluster, topology: Topology,
                                              tmp_path: Path) -> None:
    first, second = cluster.apis
    project, queue = f"faults-{uuid.uuid4().hex[:8]}", "drain"
    client = Client(second.url, project)
    assert client.request("PUT", f"/v2/queues/{queue}").status_code == 201
    load = start([first.url, second.url], project, queue)
    try:
        time.sleep(CALM)
        fault_start = time.time()
        first.send(signal.SIGTERM)
        assert first.wait(15) == 0, "the api did not drain and exit cleanly"
        fault_end = time.time()
        time.sleep(CALM)
    finally:
        load.stop()
    result = figures("issue 26: api SIGTERM", tmp_path, load, client, queue,
                     (fault_start, fault_end), drain_s=round(fault_end - fault_start, 3))
    assert result["requests_failed"] == {}, result
    assert result["stored_unacknowledged"] == 0, result
    log = first.log()
    assert "REST API stopped" in log
    for bad in ("ERROR", " 500 ", "unlisten", "storage call batch failed", "drain deadline"):
        assert bad not in log, f"{bad!r} logged while draining:\n{log[-3000:]}"

"""Liveness and readiness of every service, as Docker and systemd probe them.

- api and ws-gateway: ``/healthz`` 200 while they run; ``/readyz`` 200 while
  a storage worker answers, 503 as soon as none does or the broker is
  unreachable (within the probe's short timeout, not ``[rpc] call_timeout``).
- storage worker: the same two paths on ``[storage] health_port``; readiness
  means its database answers and its own RPC server answers a ping sent
  through the broker; 503 while it stops.

The edges also recover by themselves when a worker is back: the probe holds
no state besides its one-second cache.
"""

from __future__ import annotations

import signal
import time

import pytest
import requests

from herald.testing import polling
from herald.testing.topology import Topology, free_port, tail

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]


def status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def wait_status(url: str, expected: int, timeout: float = 15.0) -> float:
    """Seconds until ``GET url`` answered ``expected``."""
    started = time.monotonic()
    seen: list[int | None] = []

    def answered() -> bool:
        seen.append(status(url))
        return seen[-1] == expected

    try:
        polling.wait_until(answered, timeout, interval=0.1)
    except polling.WaitTimeout:
        raise AssertionError(f"{url}: {seen[-1]}, not {expected}, after {timeout:.0f} s"
                             ) from None
    return time.monotonic() - started


def test_probes_follow_storage_and_broker(topology: Topology) -> None:
    # Longer than the probe's 1 s: readiness must not wait for it. (Not much
    # longer: a ping nobody answers keeps a thread busy, and the process's
    # exit waits for it, up to this timeout.)
    env = {"OS_RPC__CALL_TIMEOUT": "4"}
    health_port = free_port()
    worker = topology.storage("storage", {**env, "OS_STORAGE__HEALTH_PORT": str(health_port)})
    api = topology.api("api", env)
    gateway = topology.ws_gateway("ws-gateway", env)
    storage_url = f"http://127.0.0.1:{health_port}"

    for url in (api.url, gateway.url, storage_url):
        assert status(f"{url}/healthz") == 200, url
        wait_status(f"{url}/readyz", 200)
    body = requests.get(f"{storage_url}/readyz", timeout=5).json()
    assert body == {"ready": True, "detail": "ready"}

    # The only worker stops: its probe says 503 while it drains (or stops
    # answering), and the edges' readiness drops within a few seconds.
    worker.send(signal.SIGTERM)
    assert worker.wait(15) == 0, tail(worker.log())
    for url in (api.url, gateway.url):
        assert wait_status(f"{url}/readyz", 503, timeout=10) < 5, url
        assert status(f"{url}/healthz") == 200, "liveness must not follow storage"
    reply = requests.get(f"{api.url}/readyz", timeout=5).json()
    assert reply["ready"] is False and reply["detail"], reply



def test_api_not_ready_without_broker(topology: Topology) -> None:
    # Nothing listens on this port: the broker is unreachable from the start.
    dead_broker = f"rabbit://guest:guest@127.0.0.1:{free_port()}/"
    api = topology.api("api", {"OS_DEFAULT__TRANSPORT_URL": dead_broker},
                       ready_statuses=None)
    api.wait_for_listen()
    assert status(f"{api.url}/healthz") == 200
    started = time.monotonic()
    assert status(f"{api.url}/readyz") == 503
    assert time.monotonic() - started < 3, "readiness must answer fast"


def test_storage_worker_not_ready_without_database(topology: Topology) -> None:
    # Nothing listens there: the worker keeps waiting for its database
    # (bounded retries), alive but not ready.
    dead_db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/herald"
    worker = topology.storage("storage", {"OS_STORAGE__CONNECTION": dead_db},
                              wait=False, health_port=True)
    worker.wait_for(lambda: status(f"{worker.url}/healthz") == 200, "GET /healthz 200")
    reply = requests.get(f"{worker.url}/readyz", timeout=5)
    assert reply.status_code == 503
    assert reply.json()["ready"] is False
    assert worker.stop() == 0, "SIGTERM while waiting for the database must exit 0"

"""herald.common.health without services: probe caching, timeouts, notify socket.

The probes must answer within their timeout even when the check hangs (a
dead broker), run at most one check at a time, reuse a result for about a
second, and report "stopping" at once; sd_notify must reach a datagram
socket named by NOTIFY_SOCKET and do nothing without it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from herald.common import health


def test_readiness_probe_caches_and_times_out() -> None:
    calls = 0
    release = asyncio.Event()

    async def slow_check() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    async def scenario() -> None:
        probe = health.ReadinessProbe(slow_check, timeout=0.1, ttl=60)
        started = time.monotonic()
        ready, detail = await probe.status()
        assert not ready and "did not finish" in detail
        assert time.monotonic() - started < 0.5
        # A second probe while the first check hangs starts no second check.
        assert (await probe.status())[0] is False
        assert calls == 1
        release.set()
        await asyncio.sleep(0.01)
        assert await probe.status() == (True, "ready")
        assert calls == 1  # cached for ttl

    asyncio.run(scenario())


def test_readiness_probe_reports_failures_and_stopping() -> None:
    stopping = False

    async def failing() -> None:
        raise health.NotReady("database unreachable")

    async def scenario() -> None:
        probe = health.ReadinessProbe(failing, stopping=lambda: stopping, ttl=0)
        assert await probe.status() == (False, "database unreachable")

    asyncio.run(scenario())
    stopping = True

    async def ok() -> None:
        return None

    async def stopped() -> None:
        probe = health.ReadinessProbe(ok, stopping=lambda: stopping)
        assert await probe.status() == (False, "stopping")

    asyncio.run(stopped())


def test_blocking_probe_never_blocks_longer_than_its_timeout() -> None:
    gate = threading.Event()
    calls = []

    def hung() -> None:
        calls.append(1)
        gate.wait(5)

    probe = health.BlockingProbe(hung, timeout=0.1, ttl=60)
    started = time.monotonic()
    ready, detail = probe.status()
    assert not ready and "without an answer" in detail
    assert probe.status()[0] is False
    assert time.monotonic() - started < 1.0
    assert len(calls) == 1
    gate.set()
    deadline = time.monotonic() + 2
    while probe.status() != (True, "ready") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.status() == (True, "ready")


def test_health_listener_serves_liveness_and_readiness() -> None:
    state = {"ready": (True, "ready")}
    listener = health.HealthListener("127.0.0.1", 0, lambda: state["ready"])
    listener.start()
    base = f"http://127.0.0.1:{listener.port}"
    try:
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
        assert urllib.request.urlopen(f"{base}/readyz", timeout=5).status == 200
        state["ready"] = (False, "message broker unreachable")
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        assert failure.value.code == 503
        assert b"message broker unreachable" in failure.value.read()
        # Liveness does not follow readiness.
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).status == 200
    finally:
        listener.stop()


def test_sd_notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert health.sd_notify("READY=1") is False
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert health.sd_notify("READY=1") is True
        assert sock.recv(64) == b"READY=1"
    # Gone socket: a warning, never an exception.
    assert health.sd_notify("STOPPING=1") is False

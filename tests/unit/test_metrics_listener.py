"""[metrics] port: a listener serving /metrics only, or none at all (0) with the hooks off.

The process-level behaviour (one listener per ``herald`` process, never on
the public ports) is checked over real processes in tests/e2e/test_metrics.py;
here, what ``start_from_conf`` does with each value of the option, and that
a port already taken stops the process with a sentence instead of a traceback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from oslo_config import cfg

from herald.cli import main
from herald.common import config, metrics
from herald.common.metrics import listener
from herald.testing.topology import free_port


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    conf([], project="herald-test")
    enabled = metrics.ENABLED
    yield conf
    metrics.ENABLED = enabled


def test_port_zero_starts_nothing_and_turns_the_hooks_off(conf: cfg.ConfigOpts) -> None:
    conf.set_override("port", 0, group="metrics")
    assert listener.start_from_conf(conf) is None
    assert metrics.ENABLED is False


def test_a_port_serves_metrics_and_nothing_else(conf: cfg.ConfigOpts) -> None:
    port = free_port()
    conf.set_override("port", port, group="metrics")
    started = listener.start_from_conf(conf)
    assert started is not None and metrics.ENABLED is True
    try:
        metrics.EMPTY_CLAIMS.inc()
        response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "herald_empty_claims_total" in response.text
        assert "process_cpu_seconds_total" in response.text
        assert "_created" not in response.text  # no *_created series
        for path in ("/", "/v2/queues", "/metrics/x"):
            assert requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 404
    finally:
        started.stop()


def test_a_taken_port_stops_the_process_with_a_sentence(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("OS_METRICS__PORT", str(taken.getsockname()[1]))
        monkeypatch.setattr(main.log, "setup", lambda *args: None)
        monkeypatch.setattr(main.compat, "apply", lambda conf: None)
        monkeypatch.setattr(main.bus_auth, "warn_if_unauthenticated", lambda conf: None)
        monkeypatch.setattr(main, "_stop_cleanly_while_starting", lambda: None)
        ran = []
        monkeypatch.setitem(main.SERVICES, "api", lambda conf, member: ran.append(1))
        assert main.main(["api", "--config-file", "/dev/null"]) == 2
    assert not ran
    assert "give each Herald process on this machine its own [metrics] port" in caplog.text

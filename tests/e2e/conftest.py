"""Fixtures of the end-to-end tests: a ``Topology`` per test, logs on failure.

The ``topology`` fixture is wired to the machine's RabbitMQ, a fresh
PostgreSQL database, a unique RPC topic and a unique tooz namespace in Redis
(fixtures of ``tests/conftest.py``). Whatever the test started is stopped at
teardown, and when the test fails the tail of every service's log is
attached to the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.testing.topology import Backends, Topology, tail


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    topology = getattr(item, "_herald_topology", None)
    if report.failed and topology is not None:
        for name, text in topology.logs().items():
            report.sections.append((f"herald log: {name} ({report.when})", tail(text, 150)))


@pytest.fixture
def backends(rabbit_url: str, rpc_topic: str, postgres_url: str,
             redis_coordination_url: str) -> Backends:
    return Backends(
        transport_url=rabbit_url,
        rpc_topic=rpc_topic,
        database_url=postgres_url,
        coordination_url=redis_coordination_url,
    )


@pytest.fixture
def topology(request: pytest.FixtureRequest, tmp_path: Path,
             backends: Backends) -> Iterator[Topology]:
    topo = Topology(tmp_path, backends)
    request.node._herald_topology = topo
    try:
        yield topo
    finally:
        topo.stop_all()


@pytest.fixture
def local_topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    """A topology without RabbitMQ/PostgreSQL/Redis: for the embedded mode."""
    topo = Topology(tmp_path)
    request.node._herald_topology = topo
    try:
        yield topo
    finally:
        topo.stop_all()

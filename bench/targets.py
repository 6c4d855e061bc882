"""Where ``make bench`` runs Herald: the system under test, started and stopped.

``distributed`` (default) is the production shape as local processes on the
machine's RabbitMQ, PostgreSQL (a fresh database, dropped afterwards) and
Redis: ``herald db upgrade``, N storage workers, 1 api, 2 ws-gateways,
started with ``herald.testing.topology`` (the end-to-end tests' launcher).
``embedded`` is one ``herald run`` process on SQLite. ``external`` is an
already running Herald (``--url``): nothing is started.

Each is a context manager yielding a ``Target``: the URLs, the database to
bulk-load, the processes to meter, and how to stop one worker. This module
must not generate load or measure anything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from herald.testing.topology import Backends, Topology, free_port

PG_ADMIN_DSN = os.environ.get("HERALD_BENCH_PG_ADMIN",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_URL = os.environ.get("HERALD_BENCH_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("HERALD_BENCH_REDIS", "redis://127.0.0.1:6379")


class Target:
    """Where Herald answers, which processes to meter, how to stop it."""

    def __init__(self) -> None:
        self.url = ""
        self.ws_url = ""
        #: Every gateway's URL (``ws_url`` is the first).
        self.ws_urls: list[str] = []
        #: The process serving ``ws_url`` (metered by the idle phase).
        self.gateway_process = ""
        self.database_url: str | None = None
        self.processes: dict[str, int] = {}
        self.topology: Topology | None = None
        self.workdir: Path | None = None

    def stop_worker(self, name: str) -> bool:
        if self.topology is None or name not in self.topology.services:
            return False
        self.topology.services[name].stop()
        self.processes.pop(name, None)
        return True


@contextlib.contextmanager
def distributed(args: argparse.Namespace) -> Iterator[Target]:
    import psycopg

    name = f"herald_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    backends = Backends(
        transport_url=RABBIT_URL, rpc_topic=f"herald-bench-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        coordination_url=f"{REDIS_URL}?namespace=herald-bench-{uuid.uuid4().hex[:8]}")
    topology = Topology(workdir, backends, env=dict(args.env))
    target = Target()
    target.database_url, target.topology, target.workdir = database_url, topology, workdir
    try:
        services = topology.distributed(storage_workers=args.workers, apis=1)
        # Two gateways: the broadcast phases spread subscribers over both.
        gateways = [topology.ws_gateway(), topology.ws_gateway("ws-gateway-2")]
        api = next(s for s in services if s.name == "api")
        target.url = api.url or ""
        target.ws_urls = [(g.url or "").replace("http://", "ws://", 1) + "/" for g in gateways]
        target.ws_url = target.ws_urls[0]
        target.gateway_process = "ws-gateway"
        target.processes = {s.name: s.pid for s in [*services, *gateways]}
        yield target
    finally:
        topology.stop_all()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"service logs kept in {workdir}", file=sys.stderr)


@contextlib.contextmanager
def embedded(args: argparse.Namespace) -> Iterator[Target]:
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    topology = Topology(workdir, None, env=dict(args.env))
    target = Target()
    target.topology, target.workdir = topology, workdir
    ws_port = free_port()
    try:
        service = topology.embedded(ws_port=ws_port)
        target.url = service.url or ""
        target.ws_url = f"ws://127.0.0.1:{ws_port}/"
        target.ws_urls = [target.ws_url]
        target.gateway_process = "run"
        target.database_url = f"sqlite:///{workdir / 'embedded' / 'data' / 'herald.sqlite'}"
        target.processes = {"run": service.pid}
        yield target
    finally:
        topology.stop_all()
        print(f"service logs kept in {workdir}", file=sys.stderr)


@contextlib.contextmanager
def external(args: argparse.Namespace) -> Iterator[Target]:
    target = Target()
    target.url, target.ws_url, target.database_url = args.url, args.ws_url, args.database_url
    target.ws_urls = [args.ws_url] if args.ws_url else []
    yield target

"""The topology launcher: Herald's services as real subprocesses, for tests and the bench.

A ``Topology`` owns every process a test starts: each one runs
``herald <command>`` (the console script next to ``sys.executable``, else
``python -m herald.cli.main``) in the test's temporary directory, with its own
environment and its stdout/stderr in a log file there. Configuration goes
through ``OS_<GROUP>__<OPTION>`` variables only, and every process reads an
empty ``--config-file``, so a developer's ``/etc/herald/herald.conf`` or
``~/.herald/herald.conf`` never leaks into a test.

``Topology.stop_all()`` (called by the ``topology`` fixture at teardown)
stops every process still running: SIGTERM, then SIGKILL after a timeout.

New kinds of processes (notifier sinks...) are added with
``Topology.start(name, command, ...)`` plus a readiness check; the
``storage()``, ``api()`` and ``ws_gateway()`` helpers show the pattern.
``lb()`` puts nginx, configured from ``deploy/nginx``, in front of them.

This module must not hold test assertions about Herald's behaviour (only
readiness checks) nor pytest fixtures: the tests' conftests and the bench
wrap it. A ``Topology`` is driven from one thread.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from herald.testing.launch import DEBUG_LOGGERS_ENV

# The process helpers are part of this module's interface: tests import
# them from here with the ``Topology`` they use.
from herald.testing.processes import (
    PING_HEADERS,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    STORAGE_READY_LINE,
    Service,
    clean_environ,
    free_port,
    gateway_health,
    herald_command,
    nginx_binary,
    ping_status,
    tail,
    ws_url,
)

__all__ = [
    "LB", "PING_HEADERS", "READY_TIMEOUT", "REPO", "STOP_TIMEOUT", "STORAGE_READY_LINE",
    "Backends", "Service", "Topology", "clean_environ", "free_port", "gateway_health",
    "herald_command", "nginx_binary", "ping_status", "tail", "ws_url",
]


@dataclass
class Backends:
    """Where a distributed topology's services meet: broker, database, tooz.

    ``rpc_topic`` and the tooz namespace are unique per test, so concurrent
    test runs and leftovers of killed ones never answer each other's calls.
    """

    transport_url: str
    rpc_topic: str
    database_url: str
    coordination_url: str

    def env(self) -> dict[str, str]:
        return {
            "OS_DEFAULT__TRANSPORT_URL": self.transport_url,
            "OS_RPC__TOPIC": self.rpc_topic,
            "OS_STORAGE__CONNECTION": self.database_url,
            "OS_COORDINATION__BACKEND_URL": self.coordination_url,
            # Every distributed test runs with an authenticated bus.
            "OS_RPC__BUS_KEYS": "e2e-bus-key",
        }



@dataclass
class LB:
    """nginx started by ``Topology.lb``: REST root and websocket URL."""

    service: Service
    rest_url: str
    ws_url: str


# The checkout (``lb()`` reads deploy/nginx from it): testing/ sits at its root.
REPO = Path(__file__).resolve().parents[1]



class Topology:
    """Every Herald process of one test, started in ``workdir``."""

    def __init__(self, workdir: Path, backends: Backends | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.backends = backends
        self.services: dict[str, Service] = {}
        self._extra_env = dict(env or {})
        #: Loggers (e.g. ``("herald",)``) the ``herald`` processes started from
        #: now on log at DEBUG, through ``herald.testing.launch``: for tests
        #: that wait for a DEBUG event such as ``long poll parked``.
        self.debug_loggers: tuple[str, ...] = ()
        # Read by every process instead of the default search path.
        self.config_file = workdir / "empty-herald.conf"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("# settings come from OS_<GROUP>__<OPTION>\n")

    # -- generic ---------------------------------------------------------

    def environment(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        env = clean_environ()
        env["PYTHONUNBUFFERED"] = "1"  # log lines reach the file as they happen
        if self.backends is not None:
            env.update(self.backends.env())
        env.update(self._extra_env)
        env.update(overrides or {})
        return env

    def start(self, name: str, command: list[str], env: Mapping[str, str] | None = None,
              cwd: Path | None = None, url: str | None = None) -> Service:
        """Start ``herald <command>`` as the service ``name`` (unique)."""
        assert name not in self.services or not self.services[name].running(), name
        launcher = herald_command()
        environment = self.environment(env)
        # Every herald process has its own metrics listener ([metrics] port,
        # default 9464): a free port each, so processes never collide.
        if "OS_METRICS__PORT" not in environment:
            environment["OS_METRICS__PORT"] = str(free_port())
        metrics_port = int(environment["OS_METRICS__PORT"])
        if self.debug_loggers:
            launcher = [sys.executable, "-m", "herald.testing.launch"]
            environment[DEBUG_LOGGERS_ENV] = ",".join(self.debug_loggers)
        service = Service(
            name=name,
            argv=[*launcher, *command, "--config-file", str(self.config_file)],
            env=environment,
            cwd=cwd or self.workdir,
            log_path=self.workdir / f"{name}.log",
            url=url,
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else None,
        )
        self.services[name] = service
        return service.start()

    def start_program(self, name: str, argv: list[str],
                      env: Mapping[str, str] | None = None) -> Service:
        """Start any program (not ``herald``) as the service ``name``.

        For helpers a test needs next to Herald -- a private redis-server it
        may SIGSTOP, a webhook sink -- so that they share the log files,
        the die-with-the-runner guard and ``stop_all()``.
        """
        assert name not in self.services or not self.services[name].running(), name
        service = Service(name=name, argv=list(argv), env=self.environment(env),
                          cwd=self.workdir, log_path=self.workdir / f"{name}.log")
        self.services[name] = service
        return service.start()

    def run_once(self, name: str, command: list[str], env: Mapping[str, str] | None = None,
                 timeout: float = 120.0) -> None:
        """Run a one-shot command (e.g. ``db upgrade``); fail with its log."""
        service = self.start(name, command, env)
        code = service.wait(timeout)
        if code is None:
            service.kill()
        assert code == 0, f"herald {' '.join(command)} exited with {code}:\n{tail(service.log())}"

    def stop_all(self) -> None:
        # SIGTERM everyone first so they shut down in parallel, then wait.
        running = [s for s in self.services.values() if s.running()]
        for service in running:
            service.send(signal.SIGTERM)
            service.send(signal.SIGCONT)  # in case a fault test left it stopped
        deadline = time.monotonic() + STOP_TIMEOUT
        for service in running:
            if service.wait(max(0.1, deadline - time.monotonic())) is None:
                service.kill()

    def logs(self) -> dict[str, str]:
        return {name: s.log() for name, s in self.services.items()}

    # -- Herald's services ----------------------------------------------

    def storage(self, name: str = "storage", env: Mapping[str, str] | None = None,
                wait: bool = True, health_port: bool = False) -> Service:
        """A storage worker (``herald storage``) consuming the test's topic.

        With ``health_port`` it serves ``/healthz`` and ``/readyz`` on a free
        port (``[storage] health_port``), and ``service.url`` is that root.
        """
        url = None
        if health_port:
            port = free_port()
            env = {"OS_STORAGE__HEALTH_PORT": str(port), **(env or {})}
            url = f"http://127.0.0.1:{port}"
        service = self.start(name, ["storage"], env)
        service.url = url
        if wait:
            service.wait_for_log(STORAGE_READY_LINE)
        return service

    def api(self, name: str = "api", env: Mapping[str, str] | None = None,
            ready_statuses: tuple[int, ...] | None = (204,)) -> Service:
        """A REST API (``herald api``) on a free port.

        ``ready_statuses=(204,)`` waits until it reaches a storage worker;
        ``(204, 503)`` only until it listens; ``None`` does not wait.
        """
        port = free_port()
        overrides = {"OS_API__BIND": "127.0.0.1", "OS_API__PORT": str(port), **(env or {})}
        service = self.start(name, ["api"], overrides, url=f"http://127.0.0.1:{port}")
        if ready_statuses:
            service.wait_for_http(ready_statuses)
        return service

    def ws_gateway(self, name: str = "ws-gateway", env: Mapping[str, str] | None = None,
                   wait: bool = True) -> Service:
        """A websocket gateway (``herald ws-gateway``) on a free port.

        ``service.url`` is its HTTP root (``GET /health``); clients connect
        to ``ws_url(service)``. With ``wait`` it returns once the gateway
        is in the ``herald.ws`` group and reaches a storage worker.
        """
        port = free_port()
        overrides = {"OS_WS_GATEWAY__BIND": "127.0.0.1", "OS_WS_GATEWAY__PORT": str(port),
                     **(env or {})}
        service = self.start(name, ["ws-gateway"], overrides, url=f"http://127.0.0.1:{port}")
        if wait:
            def ready() -> bool:
                report = gateway_health(f"http://127.0.0.1:{port}")
                return bool(report and report.get("storage_reachable")
                            and report["gateway"] in (report.get("gateways") or []))
            service.wait_for(ready, "GET /health: in herald.ws and storage reachable")
        return service

    def lb(self, apis: list[Service], gateways: list[Service], name: str = "lb") -> LB:
        """nginx in front of ``apis`` and ``gateways``, with deploy/nginx's config.

        The server blocks are ``deploy/nginx/herald-lb.conf`` itself; only
        what differs from a deployment is generated: the listen addresses
        (free ports instead of 8888/9000), named upstream groups of the given
        processes (instead of Docker's DNS) and a main configuration that
        keeps nginx in the foreground, as the current user, with its pid,
        logs and temporary files in the test's directory.
        """
        nginx = nginx_binary()
        assert nginx, "nginx is not installed (.ci/run installs Debian's nginx-light)"
        prefix = self.workdir / name
        prefix.mkdir(parents=True, exist_ok=True)
        rest_port, ws_port = free_port(), free_port()
        servers = (REPO / "deploy" / "nginx" / "herald-lb.conf").read_text()
        servers = servers.replace("listen 8888;", f"listen 127.0.0.1:{rest_port};")
        servers = servers.replace("listen 9000;", f"listen 127.0.0.1:{ws_port};")
        # nginx's stub_status listener: a free port too, or parallel runs collide.
        servers = servers.replace("listen 8889;", f"listen 127.0.0.1:{free_port()};")
        (prefix / "herald-lb.conf").write_text(servers)

        def group(label: str, members: list[Service]) -> str:
            lines = "".join(f"    server {s.url.removeprefix('http://')};\n" for s in members)
            return (f"upstream herald_{label} {{\n{lines}}}\n"
                    f"map \"\" $herald_{label}_backend {{ default herald_{label}; }}\n")

        (prefix / "backends.conf").write_text(group("api", apis) + group("ws", gateways))
        (prefix / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;  # one round-robin state: connections alternate exactly
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/backends.conf;
    include {prefix}/herald-lb.conf;
}}
""")
        argv = [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        service = self.start_program(name, argv)
        service.url = f"http://127.0.0.1:{rest_port}"
        service.wait_for_listen()
        return LB(service, rest_url=service.url, ws_url=f"ws://127.0.0.1:{ws_port}/")

    def embedded(self, name: str = "run", cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, port: int | None = None,
                 wait: bool = True, ws_port: int | None = None) -> Service:
        """``herald run`` as ``make run`` starts it, in ``cwd`` (./data lives there).

        Its websocket gateway gets a free port too (``ws_port``), so embedded
        runs never fight over the default 9000.
        """
        port = port or free_port()
        overrides = {"OS_API__PORT": str(port),
                     "OS_WS_GATEWAY__PORT": str(ws_port or free_port()), **(env or {})}
        service = self.start(name, ["run"], overrides, cwd=cwd or self.workdir / "embedded",
                             url=f"http://127.0.0.1:{port}")
        if wait:
            service.wait_for_http((204,))
        return service

    def distributed(self, storage_workers: int = 2, apis: int = 1,
                    env: Mapping[str, str] | None = None,
                    migrate_first: bool = True) -> list[Service]:
        """The production shape: (db upgrade,) N storage workers, M APIs.

        With ``migrate_first`` the schema is created by ``herald db upgrade``
        and the workers are told not to migrate, which proves the operator's
        command is enough on its own. Without it, the workers race to migrate
        at start-up under their tooz lock.
        """
        env = dict(env or {})
        if migrate_first:
            self.run_once("db-upgrade", ["db", "upgrade"], env)
            env.setdefault("OS_STORAGE__MIGRATE_ON_START", "false")
        workers = [self.storage(f"storage-{i}", env, wait=False)
                   for i in range(1, storage_workers + 1)]
        for worker in workers:
            worker.wait_for_log(STORAGE_READY_LINE)
        apis_started = [self.api(f"api-{i}" if apis > 1 else "api", env)
                        for i in range(1, apis + 1)]
        return [*workers, *apis_started]



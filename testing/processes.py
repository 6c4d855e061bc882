"""One subprocess of a test topology: start, readiness checks, stop, log.

A ``Service`` runs one program (usually ``herald <command>``) in its own
session, with its stdout/stderr in a log file, and dies with the test runner
(``PR_SET_PDEATHSIG``) even when no teardown runs. The helpers next to it
answer the readiness questions every launcher asks: a free port, ``GET
/v2/ping``, a gateway's ``GET /health``, a log line.

This module must not decide *which* services run or how they are wired
(that is ``herald.testing.topology``). A ``Service`` is driven from one
thread (the test's); its log file may be read from any thread.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from herald.testing.polling import WaitTimeout, wait_until

# How long a service may take to become ready. Python start-up plus the
# imports of oslo.messaging, SQLAlchemy and tooz take 1-3 s on a loaded
# 2-core CI machine; migrations add a little.
READY_TIMEOUT = 45.0
STOP_TIMEOUT = 10.0

# Written by herald.common.rpc.server.RPCServer.start(): the worker consumes
# from the storage topic from then on.
STORAGE_READY_LINE = "RPC server listening on topic"


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the test runner dies.

    Teardown stops every service, but a test runner that is itself killed
    (a CI timeout, a second Ctrl-C) runs no teardown; without this its
    services would live on, holding ports and consuming RPC calls.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def herald_command() -> list[str]:
    """How to start ``herald``: the installed script, as ``make run`` does."""
    script = Path(sys.executable).with_name("herald")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "herald.cli.main"]


def clean_environ() -> dict[str, str]:
    """The test runner's environment without any Herald/oslo setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OS_")}



@dataclass
class Service:
    """One subprocess: its command, environment, log file and lifecycle."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    url: str | None = None  # the HTTP root, for services that serve HTTP
    #: ``http://127.0.0.1:<port>/metrics`` of a ``herald`` process (None: off).
    metrics_url: str | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Service:
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is running"
        self.cwd.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"==== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
        log.flush()
        try:
            # A session of its own: a Ctrl-C on the test runner's terminal
            # does not reach the services, and teardown can kill the group.
            with warnings.catch_warnings():
                # preexec_fn makes subprocess fork() in Python; eventlet (pulled
                # in by oslo libraries, never used by Herald) warns about that.
                warnings.filterwarnings("ignore", "Using fork", DeprecationWarning)
                self.popen = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        finally:
            log.close()  # the child holds its own descriptor
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, signum: int) -> None:
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Ask the process to stop; SIGKILL its whole group if it does not."""
        if self.popen is None:
            return None
        if self.running():
            self.send(signum)
            # A process a fault test left SIGSTOPped would not act on the signal.
            self.send(signal.SIGCONT)
            if self.wait(timeout) is None:
                self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_TIMEOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, ready: Callable[[], bool], what: str,
                 timeout: float = READY_TIMEOUT) -> None:
        """Poll ``ready()`` until true; fail early if the process died."""
        def ready_or_dead() -> bool:
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited with {self.popen and self.popen.returncode} "
                    f"before {what}; log:\n{tail(self.log())}"
                )
            return ready()

        try:
            wait_until(ready_or_dead, timeout, interval=0.1)
        except WaitTimeout:
            raise AssertionError(f"{self.name}: no {what} within {timeout:.0f} s; "
                                 f"log:\n{tail(self.log())}") from None

    def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT, after: int = 0) -> None:
        """Wait until ``text`` appears in the log past offset ``after``."""
        self.wait_for(lambda: text in self.log()[after:], f"log line {text!r}", timeout)

    def wait_for_http(self, statuses: tuple[int, ...] = (204,),
                      timeout: float = READY_TIMEOUT) -> None:
        """Wait until ``GET /v2/ping`` answers with one of ``statuses``.

        204 means the API is up *and* reached a storage worker; pass
        ``(204, 503)`` to wait only for the API to listen.
        """
        assert self.url, f"{self.name} serves no HTTP"
        self.wait_for(lambda: ping_status(self.url) in statuses,
                      f"GET /v2/ping in {statuses}", timeout)

    def wait_for_listen(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the service accepts TCP connections on its URL's port.

        For tests of a service whose requests are expected to fail or hang.
        """
        assert self.url, f"{self.name} serves no HTTP"
        port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        self.wait_for(listening, f"a listener on port {port}", timeout)



def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, often not on a normal user's PATH)."""
    import shutil

    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def ws_url(service: Service) -> str:
    """The websocket URL of a gateway started by ``Topology.ws_gateway``."""
    assert service.url, f"{service.name} serves no HTTP"
    return service.url.replace("http://", "ws://", 1) + "/"


# Like every /v2 request, ping needs a Client-ID and a project.
PING_HEADERS = {"Client-ID": "8c9e9b4e-6c1e-4a8e-9a55-0d1f2b3c4d5e", "X-Project-ID": "e2e-ping"}


def ping_status(url: str) -> int | None:
    try:
        return requests.get(f"{url}/v2/ping", headers=PING_HEADERS, timeout=5).status_code
    except requests.RequestException:
        return None


def gateway_health(url: str) -> dict | None:
    """``GET /health`` of a websocket gateway (None while it does not answer)."""
    try:
        response = requests.get(f"{url}/health", timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.status_code in (200, 503) else None


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])



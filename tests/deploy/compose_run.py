"""``make compose-test``: docker-compose.yml built and run for real, as an operator would.

On this machine's Docker engine (installed from Debian and started when it
is missing), with stand-in images built from Debian's packages when no
registry answers (``deploy/offline-images/build.sh``), it brings the
topology up through ``deploy/compose.sh`` -- the script behind ``make up``,
which uses Compose v2 or Debian 12's v1, whichever is installed -- and checks
what README.md and docs/operations.md say about containers:

1. ``up`` comes healthy; the README's curl flow runs as written through the
   load balancer, and a websocket session works through it;
2. scaled to 3 gateways, 2 storage workers and 2 apis, new websocket
   connections reach every gateway;
3. a REST post is pushed to websocket subscribers on every gateway;
4. a storage container killed with ``docker kill`` under a steady load costs
   no request and no acknowledged message;
5. one request id is found in the api's, a storage worker's and the
   notifier's lines of ``logs``;
6. PostgreSQL logged no ERROR on that normal path.

``down -v`` runs at the end, also when a check fails or the run is
interrupted, so no container, network or volume is left behind. The last
line printed is a one-line summary. Not collected by pytest (no ``test_``
prefix): it needs root (or sudo) for the engine and takes minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from herald.testing.polling import wait_until
from herald.testing.processes import free_port
from tests.e2e.flows import Rest
from tests.readme import block
from tests.ws.client import WSClient

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SH = ROOT / "deploy" / "compose.sh"
PROJECT = "heraldcomposetest"
SUDO = [] if os.geteuid() == 0 else ["sudo"]


def log(text: str) -> None:
    print(f"compose-test: {text}", flush=True)


def run(*command: str, env: dict[str, str] | None = None, timeout: float = 600,
        quiet: bool = False) -> str:
    """Run ``command`` and return its standard output; unless ``quiet``, its
    output is shown as it comes (a build takes minutes). A non-zero exit
    raises with the output's tail."""
    if quiet:
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=timeout)
        stdout, output, code = result.stdout, result.stdout + result.stderr, result.returncode
    else:
        lines: list[str] = []
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as process:
            timer = threading.Timer(timeout, process.kill)
            timer.start()
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                print(f"  {line}", end="", flush=True)
            timer.cancel()
        stdout = output = "".join(lines)
        code = process.returncode
    if code != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise AssertionError(f"{' '.join(command)} exited {code}:\n{tail}")
    return stdout


# -- the engine and the images -------------------------------------------------


def ensure_engine() -> str:
    """Install Debian's docker.io, docker-compose and debootstrap if missing
    and start dockerd if it does not answer; returns which Compose is used."""
    have_compose = (subprocess.run(["docker", "compose", "version"], capture_output=True)
                    .returncode == 0 if shutil.which("docker") else False)
    missing = [package for package, present in (
        ("docker.io", shutil.which("dockerd")),
        ("docker-compose", have_compose or shutil.which("docker-compose")),
        # deploy/offline-images/build.sh makes its base with it when no
        # registry answers (a fresh CI machine has neither).
        ("debootstrap", shutil.which("debootstrap") or os.path.exists("/usr/sbin/debootstrap")))
        if not present]
    if missing:
        log(f"installing {' '.join(missing)} from Debian")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(*SUDO, "apt-get", "update", "-q", env=env, quiet=True)
        run(*SUDO, "apt-get", "install", "-y", "-q", *missing, env=env, quiet=True)
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        log("starting dockerd")
        with open(Path(tempfile.gettempdir()) / "herald-dockerd.log", "ab") as out:
            subprocess.Popen([*SUDO, "dockerd"], stdout=out, stderr=out,
                             start_new_session=True)
        wait_until(lambda: subprocess.run(["docker", "info"], capture_output=True)
                   .returncode == 0, 60, what="dockerd to answer")
    return "v2" if subprocess.run(["docker", "compose", "version"],
                                  capture_output=True).returncode == 0 else "v1"


def image_settings(workdir: Path) -> dict[str, str]:
    """HERALD_*_IMAGE settings: none where a registry answers, else the
    offline stand-ins (built when missing)."""
    env_file = workdir / "images.env"
    run(str(ROOT / "deploy" / "offline-images" / "build.sh"), "--env", str(env_file),
        timeout=900)
    if not env_file.exists():
        return {}
    return dict(line.split("=", 1) for line in env_file.read_text().split())


class Stack:
    """The compose project this run owns, and what it needs to reach it."""

    def __init__(self, images: dict[str, str]) -> None:
        self.rest_port, self.ws_port = free_port(), free_port()
        self.env = {**os.environ, **images, "COMPOSE_PROJECT_NAME": PROJECT,
                    "HERALD_REST_PORT": str(self.rest_port),
                    "HERALD_WS_PORT": str(self.ws_port),
                    "HERALD_COMPOSE_WAIT_TIMEOUT": "240"}
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}"

    def compose(self, *args: str, quiet: bool = False, timeout: float = 600) -> str:
        return run(str(COMPOSE_SH), *args, env=self.env, quiet=quiet, timeout=timeout)

    def containers(self, service: str) -> list[str]:
        return run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                   "--filter", f"label=com.docker.compose.service={service}",
                   quiet=True).split()

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", *services, quiet=True)

    def down(self) -> list[str]:
        """``down -v``; returns what is left of the project (nothing, normally)."""
        self.compose("down", "-v", "--remove-orphans", "-t", "10", quiet=True, timeout=180)
        label = f"label=com.docker.compose.project={PROJECT}"
        return [f"{kind}:{name}" for kind, command in (
            ("container", ("ps", "-aq")), ("network", ("network", "ls", "-q")),
            ("volume", ("volume", "ls", "-q")))
            for name in run("docker", *command, "--filter", label, quiet=True).split()]


# -- the checks ----------------------------------------------------------------


def readme_flow(stack: Stack) -> None:
    script = block("sh", "H=(").replace("http://127.0.0.1:8888", stack.rest_url)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script],
                            capture_output=True, text=True, timeout=120)
    statuses = re.findall(r"HTTP/1\.1 (\d{3}) ", result.stdout)
    assert result.returncode == 0 and statuses == ["204", "201", "204", "204"], \
        result.stdout + result.stderr

    project = f"ws-{uuid.uuid4().hex[:8]}"
    with WSClient(stack.ws_url, project) as client:
        status, body = client.status_body("message_post", {
            "queue_name": "session", "messages": [{"body": {"via": "websocket"}, "ttl": 300}]})
        assert status == 201, body
        status, body = client.status_body("message_list", {"queue_name": "session",
                                                            "echo": True})
        assert status == 200 and [m["body"] for m in body["messages"]] == [{"via": "websocket"}]
    assert Rest(stack.rest_url, project).stats("session")["total"] == 1
    for probe in ("/healthz", "/readyz"):  # the api's, through the lb
        assert requests.get(stack.rest_url + probe, timeout=10).status_code == 200, probe


def gateway_connections(container: str) -> int:
    code = ("import json, urllib.request; print(json.load(urllib.request.urlopen("
            "'http://127.0.0.1:9000/health', timeout=4))['connections'])")
    return int(run("docker", "exec", container, "python", "-c", code, quiet=True))


def scaled_websockets_reach_every_gateway(stack: Stack) -> None:
    stack.compose("--up-healthy", "--scale", "ws-gateway=3", "--scale", "storage=2",
                  "--scale", "api=2")
    gateways = stack.containers("ws-gateway")
    assert len(gateways) == 3, gateways
    project = f"fan-{uuid.uuid4().hex[:8]}"
    listeners = [WSClient(stack.ws_url, project) for _ in range(6)]
    try:
        for listener in listeners:
            status, body = listener.status_body("subscription_create", {"queue_name": "news"})
            assert status == 201, body
        # least_conn: each new websocket goes to the gateway with the fewest.
        counts = [gateway_connections(gateway) for gateway in gateways]
        assert min(counts) > 0 and max(counts) - min(counts) <= 1, \
            f"connections per gateway: {counts}"
        log(f"6 new websockets per gateway: {counts}")

        posted = Rest(stack.rest_url, project).post("news", {"via": "rest"}, ttl=120)
        assert posted.status_code == 201, posted.text
        for listener in listeners:
            frame, _ = listener.recv()
            assert frame["body"] == {"via": "rest"}, frame
    finally:
        for listener in listeners:
            listener.close()


class Load:
    """Producers posting through the load balancer until stopped: every
    answer is recorded, every acknowledged message id kept."""

    def __init__(self, stack: Stack, producers: int = 4) -> None:
        self.rest = [Rest(stack.rest_url, "steady", timeout=60) for _ in range(producers)]
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self.longest = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._produce, args=(rest,), daemon=True)
                         for rest in self.rest]

    def _produce(self, rest: Rest) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                response = rest.post("steady", {"n": n}, ttl=3600)
            except requests.RequestException as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.longest = max(self.longest, time.monotonic() - started)
            if response.status_code == 201:
                self.acknowledged.extend(href.rsplit("/", 1)[1]
                                         for href in response.json()["resources"])
            else:
                self.failures.append(f"{response.status_code} {response.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)


def killed_storage_costs_nothing(stack: Stack) -> None:
    rest = Rest(stack.rest_url, "steady")
    assert rest.create_queue("steady").status_code in (201, 204)
    with Load(stack) as load:
        wait_until(lambda: len(load.acknowledged) >= 20, 30, what="the load to run")
        victim = stack.containers("storage")[0]
        run("docker", "kill", victim, quiet=True)
        killed_at = len(load.acknowledged)
        wait_until(lambda: len(load.acknowledged) >= killed_at + 200, 60,
                   what="200 more posts after the kill")
    assert not load.failures, f"{len(load.failures)} failed: {load.failures[:5]}"
    stored = rest.stats("steady")["total"]
    assert stored == len(load.acknowledged), (stored, len(load.acknowledged))
    log(f"storage container killed under load: {len(load.acknowledged)} posts acknowledged, "
        f"all stored, 0 failed, longest {load.longest:.2f} s")


def request_id_in_every_log(stack: Stack) -> None:
    rest = Rest(stack.rest_url, f"rid-{uuid.uuid4().hex[:8]}")
    created = rest.request("POST", "/v2/queues/audited/subscriptions",
                           json={"subscriber": "http://lb:8888/lb-healthz", "ttl": 600})
    assert created.status_code == 201, created.text
    # PostgreSQL's log from here on is this normal path's (the kill before
    # is a fault: re-sends racing their first sends may deadlock there).
    logged_before = len(stack.logs("postgres").splitlines())
    request_id = f"req-{uuid.uuid4()}"
    posted = rest.request("POST", "/v2/queues/audited/messages",
                          headers={"X-Openstack-Request-Id": request_id},
                          json={"messages": [{"body": {"audit": 1}, "ttl": 300}]})
    assert posted.status_code == 201, posted.text

    def lines(service: str, text: str) -> list[str]:
        return [line for line in stack.logs(service).splitlines()
                if request_id in line and text in line]

    wait_until(lambda: lines("storage", "delivered notification"), 60,
               what="the notifier's delivery line")
    assert lines("api", "POST /v2/queues/audited/messages 201"), "no api line"
    assert lines("storage", "message_post"), "no storage worker line"
    errors = [line for line in stack.logs("postgres").splitlines()[logged_before:]
              if "ERROR" in line]
    assert not errors, "PostgreSQL logged errors:\n" + "\n".join(errors[:10])


def no_worker_is_a_503_after_one_call_timeout(stack: Stack) -> None:
    """Every storage worker stopped: the lb does not retry the api's 503 on
    the other api, so it comes back after one [rpc] call_timeout (10 s)."""
    stack.compose("stop", "-t", "10", "storage", quiet=True)
    rest = Rest(stack.rest_url, "steady", timeout=60)
    outcomes: dict[str, tuple[int, float]] = {}

    def call(method: str, path: str, **kwargs: object) -> None:
        started = time.monotonic()
        status = rest.request(method, path, **kwargs).status_code
        outcomes[method] = (status, time.monotonic() - started)

    threads = [threading.Thread(target=call, args=("GET", "/v2/queues/steady/stats")),
               threading.Thread(target=call, args=("POST", "/v2/queues/steady/messages"),
                                kwargs={"json": {"messages": [{"body": 1, "ttl": 60}]}})]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(status == 503 and seconds < 13 for status, seconds in outcomes.values()) \
        and len(outcomes) == 2, outcomes
    log("no storage worker: " + ", ".join(f"{method} {status} after {seconds:.1f} s"
                                          for method, (status, seconds) in outcomes.items()))


CHECKS: list[tuple[str, Callable[[Stack], None]]] = [
    ("readme curl flow and a websocket session through the lb", readme_flow),
    ("3 gateways: new websockets reach each, a REST post reaches them all",
     scaled_websockets_reach_every_gateway),
    ("docker kill of a storage container under load", killed_storage_costs_nothing),
    ("one request id in the api, worker and notifier logs; no PostgreSQL error",
     request_id_in_every_log),
    ("every storage worker stopped: 503 after one call_timeout",
     no_worker_is_a_503_after_one_call_timeout),
]


def main() -> int:
    started = time.monotonic()
    passed: list[str] = []
    stage = "the engine"
    stack: Stack | None = None
    # SIGTERM (CI's timeout) takes the same way out as a failure: down -v.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        compose_version = ensure_engine()
        with tempfile.TemporaryDirectory() as workdir:
            stage = "the images"
            images = image_settings(Path(workdir))
        stack = Stack(images)
        stage = "up"
        log(f"up (Compose {compose_version}, "
            f"{'offline stand-in' if images else 'upstream'} images)")
        # --force-rm: the legacy builder (Compose v1) leaves a failed step's
        # container behind otherwise.
        stack.compose("build", *(["--force-rm"] if compose_version == "v1" else []))
        stack.compose("--up-healthy")
        passed.append("up healthy")
        log(f"up and healthy after {time.monotonic() - started:.0f} s")
        for stage, check in CHECKS:
            log(f"check: {stage}")
            check(stack)
            passed.append(stage)
            log(f"ok after {time.monotonic() - started:.0f} s")
        outcome = "passed"
    except Exception as exc:  # any failure: reported, then down -v
        print(f"compose-test: FAILED at {stage}: {exc}", file=sys.stderr, flush=True)
        if stack is not None:
            print(stack.logs()[-6000:], file=sys.stderr)
        outcome = f"FAILED at {stage}"
    finally:
        left = stack.down() if stack is not None else []
    if left:
        outcome = f"{outcome}, but left behind: {' '.join(left)}"
    else:
        outcome += " (no container, network or volume left)"
    log(f"{outcome}: {len(passed)} of {len(CHECKS) + 1} checks in "
        f"{time.monotonic() - started:.0f} s")
    return 0 if outcome.startswith("passed") and not left else 1


if __name__ == "__main__":
    sys.exit(main())

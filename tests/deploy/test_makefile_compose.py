"""The Makefile's container targets pick whichever Compose is installed.

``make up`` / ``make down`` / ``make logs`` go through deploy/compose.sh:
Compose v2 (``docker compose``) when it answers, else Debian 12's Compose v1
(``docker-compose`` 1.29), always with ``COMPOSE_PROJECT_NAME=herald``.
``make up`` waits for health: ``up --wait`` on v2; on v1, which has no
``--wait``, deploy/compose-wait.sh polls ``docker inspect`` on the project's
containers, fails on an unhealthy or failed container and gives up after
``HERALD_COMPOSE_WAIT_TIMEOUT`` seconds; then lb's nginx is reloaded so that
it resolves scaled gateways.

No Docker runs here: ``docker`` and ``docker-compose`` are stand-in scripts
in tmp_path that record their arguments and answer ``compose version``,
``ps`` and ``inspect`` from files the test writes. PATH holds only them and
links to the few system programs the Makefile and scripts use, so a real
Docker on the machine is never reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

# Programs make, deploy/compose.sh and deploy/compose-wait.sh run, besides
# docker and docker-compose.
SYSTEM_PROGRAMS = ("make", "sh", "dirname", "date", "sleep", "cat", "env", "id", "ls")

DOCKER = r"""#!/bin/sh
echo "docker $* [project=${COMPOSE_PROJECT_NAME:-}]" >> "$STANDIN/calls"
case "$1 $2" in
    "compose version")
        if [ -e "$STANDIN/has-v2" ]; then echo "Docker Compose version v2.29.0"; exit 0; fi
        echo "docker: 'compose' is not a docker command." >&2; exit 1 ;;
    "compose "*) exit 0 ;;
esac
case "$1" in
    ps) cat "$STANDIN/ids" ;;
    inspect)
        # Each call answers with the next states file; the last one repeats.
        n=$(cat "$STANDIN/polls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$STANDIN/polls"
        if [ -e "$STANDIN/states.$n" ]; then cat "$STANDIN/states.$n"
        else cat "$STANDIN/states"; fi ;;
esac
"""

DOCKER_COMPOSE = r"""#!/bin/sh
echo "docker-compose $* [project=${COMPOSE_PROJECT_NAME:-}]" >> "$STANDIN/calls"
"""

HEALTHY = ("/herald_migrate_1 exited 0 none\n/herald_postgres_1 running 0 healthy\n"
           "/herald_api_1 running 0 healthy\n/herald_api_2 running 0 healthy\n")
STARTING = ("/herald_migrate_1 exited 0 none\n/herald_postgres_1 running 0 healthy\n"
            "/herald_api_1 running 0 starting\n/herald_api_2 created 0 none\n")


def _script(path: Path, body: str) -> None:
    path.write_text(body)
    path.chmod(0o755)


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ids").write_text("c1\nc2\nc3\nc4\n")
    (state / "states").write_text(HEALTHY)
    return state


def _make(tmp_path: Path, standin: Path, *args: str, v2: bool, v1: bool,
          timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program in SYSTEM_PROGRAMS:
        found = shutil.which(program, path="/usr/bin:/bin")
        assert found, program
        if not (bin_dir / program).exists():
            (bin_dir / program).symlink_to(found)
    # docker (the client) is always there; whether its compose plugin
    # answers is the v2 switch. docker-compose exists only when v1 is asked.
    _script(bin_dir / "docker", DOCKER)
    if v2:
        (standin / "has-v2").touch()
    if v1:
        _script(bin_dir / "docker-compose", DOCKER_COMPOSE)
    environment = {"PATH": str(bin_dir), "HOME": str(tmp_path), "STANDIN": str(standin),
                   "HERALD_COMPOSE_WAIT_INTERVAL": "0.1", **env}
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args],
                          env=environment, capture_output=True, text=True, timeout=timeout)


def _calls(standin: Path) -> list[str]:
    path = standin / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_v2_is_preferred_and_waits_with_wait(tmp_path: Path, standin: Path) -> None:
    result = _make(tmp_path, standin, "up", "ARGS=--scale api=2", v2=True, v1=True)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = _calls(standin)
    assert "docker compose up -d --build --wait --scale api=2 [project=herald]" in calls
    assert not [c for c in calls if c.startswith("docker-compose")]
    # v2 waits itself: no polling. Then lb re-resolves the gateways.
    assert not [c for c in calls if c.startswith("docker inspect")]
    assert calls[-1] == "docker compose exec -T lb nginx -s reload [project=herald]"


def test_v1_when_v2_is_missing_and_polls_health(tmp_path: Path, standin: Path) -> None:
    (standin / "states.1").write_text(STARTING)
    (standin / "states.2").write_text(STARTING)
    result = _make(tmp_path, standin, "up", "ARGS=--scale api=2", v2=False, v1=True)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = _calls(standin)
    assert calls[0] == "docker compose version [project=herald]"
    assert calls[1] == "docker-compose up -d --build --scale api=2 [project=herald]"
    assert "--wait" not in " ".join(calls), "Compose 1.29 has no --wait"
    assert calls[2] == ("docker ps -a -q --filter label=com.docker.compose.project=herald"
                        " [project=herald]")
    inspects = [c for c in calls if c.startswith("docker inspect")]
    # Two polls saw api_1 starting and api_2 only created; the third, all ready.
    assert len(inspects) == 3
    assert inspects[0].split()[-5:-1] == ["c1", "c2", "c3", "c4"]
    assert "every container of herald is ready" in result.stdout
    assert calls[-1] == "docker-compose exec -T lb nginx -s reload [project=herald]"


@pytest.mark.parametrize(("states", "message"), [
    (HEALTHY.replace("api_2 running 0 healthy", "api_2 running 0 unhealthy"),
     "herald_api_2 is unhealthy"),
    (HEALTHY.replace("migrate_1 exited 0", "migrate_1 exited 3"),
     "herald_migrate_1 exited with code 3"),
])
def test_v1_wait_fails_at_once_on_a_broken_container(tmp_path: Path, standin: Path,
                                                     states: str, message: str) -> None:
    (standin / "states").write_text(states)
    started = time.monotonic()
    result = _make(tmp_path, standin, "up", v2=False, v1=True)
    assert result.returncode != 0
    assert message in result.stderr
    assert time.monotonic() - started < 10, "must not wait for the timeout"
    assert "reload" not in _calls(standin)[-1]


def test_v1_wait_is_bounded(tmp_path: Path, standin: Path) -> None:
    (standin / "states").write_text(STARTING)
    started = time.monotonic()
    result = _make(tmp_path, standin, "up", v2=False, v1=True,
                   HERALD_COMPOSE_WAIT_TIMEOUT="1")
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "not ready after 1s" in result.stderr
    assert "herald_api_1(running/starting)" in result.stderr
    assert "herald_api_2(created/none)" in result.stderr
    assert elapsed < 15


def test_neither_compose_says_what_to_install(tmp_path: Path, standin: Path) -> None:
    result = _make(tmp_path, standin, "up", v2=False, v1=False)
    assert result.returncode != 0
    assert "docker compose" in result.stderr and "docker-compose" in result.stderr
    assert not [c for c in _calls(standin) if "up" in c.split()]


@pytest.mark.parametrize(("v2", "expected"), [
    (True, "docker compose {} [project=herald]"),
    (False, "docker-compose {} [project=herald]"),
])
@pytest.mark.parametrize(("target", "compose_args"), [
    ("down", "down -v"),
    ("logs", "logs -f --tail=100 -v"),
])
def test_down_and_logs_use_the_same_choice(tmp_path: Path, standin: Path, v2: bool,
                                           expected: str, target: str,
                                           compose_args: str) -> None:
    result = _make(tmp_path, standin, target, "ARGS=-v", v2=v2, v1=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _calls(standin)[-1] == expected.format(compose_args)


def test_a_project_name_from_the_environment_is_kept(tmp_path: Path, standin: Path) -> None:
    result = _make(tmp_path, standin, "down", v2=True, v1=False,
                   COMPOSE_PROJECT_NAME="herald-ci")
    assert result.returncode == 0, result.stderr
    assert _calls(standin)[-1] == "docker compose down [project=herald-ci]"


def test_scripts_are_executable() -> None:
    for name in ("compose.sh", "compose-wait.sh"):
        assert os.access(REPO / "deploy" / name, os.X_OK), name

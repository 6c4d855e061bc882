"""tests/preflight.py and the Makefile's test and test-deps targets, through their CLIs.

``make test`` on a machine that lacks something must stop in seconds, before
building .venv or starting pytest, with one message naming each missing
package with the command that installs it and each silent service with the
command that starts it. ``make test-deps`` must install exactly the packages
of tests/system-packages.txt that are missing, and README.md must name them
all.

The machine here has nginx, chromium and the services; these tests hide or
fake them through the variables the preflight reads (PATH,
HERALD_PREFLIGHT_SYSTEM_DIRS, HERALD_TEST_CHROMIUM, HERALD_TEST_PG_ADMIN...),
and stand in for apt-get, service and the venv's python with scripts in
tmp_path that record their calls. Nothing is installed, started or stopped
for real.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import preflight
from tests.preflight import PACKAGES_FILE, SERVICES, read_packages

REPO = Path(__file__).resolve().parents[2]
PREFLIGHT = REPO / "tests" / "preflight.py"
# "Within seconds": the checks are a few stat calls and local connects.
DEADLINE = 5.0
# Where make, sh, env and id live; Debian keeps nginx out of them (/usr/sbin).
SYSTEM_PATH = "/usr/bin:/bin"


def _executable(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them; nobody answers)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def machine(tmp_path: Path, listening_port: int) -> dict[str, str]:
    """An environment with every prerequisite present, all of them fakes."""
    bin_dir, sbin_dir = tmp_path / "bin", tmp_path / "sbin"
    bin_dir.mkdir()
    sbin_dir.mkdir()
    _executable(bin_dir / "nginx")
    chromium = _executable(tmp_path / "chromium" / "chromium")
    for server in ("pg_ctlcluster", "rabbitmq-server", "redis-server"):
        _executable(sbin_dir / server)
    return {
        "PATH": f"{bin_dir}:{SYSTEM_PATH}",
        "HERALD_PREFLIGHT_SYSTEM_DIRS": str(sbin_dir),
        "HERALD_TEST_CHROMIUM": str(chromium),
        "HERALD_TEST_PG_ADMIN": f"postgresql://postgres@127.0.0.1:{listening_port}/postgres",
        "HERALD_TEST_RABBIT": f"rabbit://guest:guest@127.0.0.1:{listening_port}/",
        "HERALD_TEST_REDIS": f"redis://127.0.0.1:{listening_port}",
        "LANG": "C.UTF-8",
    }


def _preflight(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(PREFLIGHT), *args], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    return result, time.monotonic() - started


def _hide_nginx(env: dict[str, str]) -> None:
    (Path(env["PATH"].split(":")[0]) / "nginx").unlink()
    # The real one is in /usr/sbin, out of both PATH and the system dirs here.
    assert shutil.which("nginx", path=env["PATH"]) is None
    assert shutil.which("nginx", path=env["HERALD_PREFLIGHT_SYSTEM_DIRS"]) is None


def test_a_ready_machine_passes(machine: dict[str, str]) -> None:
    result, elapsed = _preflight(machine)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("preflight: ready: nginx ")
    assert elapsed < DEADLINE


def test_nginx_in_the_system_dirs_counts(machine: dict[str, str]) -> None:
    # Debian's nginx is in /usr/sbin, which a normal user's PATH lacks; the
    # tests find it there (herald.testing.processes's nginx_binary), so must this.
    bin_dir = Path(machine["PATH"].split(":")[0])
    (bin_dir / "nginx").rename(Path(machine["HERALD_PREFLIGHT_SYSTEM_DIRS"]) / "nginx")
    result, _ = _preflight(machine)
    assert result.returncode == 0, result.stderr


def test_missing_nginx_is_named_with_the_command_that_installs_it(
        machine: dict[str, str]) -> None:
    _hide_nginx(machine)
    result, elapsed = _preflight(machine)
    assert result.returncode == 1
    assert elapsed < DEADLINE
    message = result.stderr
    assert "nothing was run" in message
    assert "nginx-light: no nginx on PATH" in message
    assert "make test-deps" in message
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert f"{sudo}apt-get install -y nginx-light)" in message
    assert "chromium" not in message, "chromium is there: only what is missing is named"
    assert result.stdout == ""


def test_everything_missing_is_one_message(machine: dict[str, str], closed_port: int) -> None:
    _hide_nginx(machine)
    machine["HERALD_TEST_CHROMIUM"] = str(Path(machine["PATH"].split(":")[0]) / "no-chromium")
    for service in SERVICES:
        machine[service.variable] = f"scheme://127.0.0.1:{closed_port}/"
    result, elapsed = _preflight(machine)
    assert result.returncode == 1
    assert elapsed < DEADLINE
    message = result.stderr
    assert message.count("make test: this machine lacks") == 1
    assert "apt-get install -y nginx-light chromium)" in message
    assert "chromium: HERALD_TEST_CHROMIUM=" in message
    for service in SERVICES:
        assert f"  {service.name} on 127.0.0.1:{closed_port} " in message
    assert "pg_ctlcluster" in message
    assert "rabbitmq-server -detached" in message
    assert f"redis-server --daemonize yes --bind 127.0.0.1 --port {closed_port}" in message


def test_a_service_that_is_not_installed_gets_its_install_command(
        machine: dict[str, str], closed_port: int) -> None:
    (Path(machine["HERALD_PREFLIGHT_SYSTEM_DIRS"]) / "rabbitmq-server").unlink()
    machine["HERALD_TEST_RABBIT"] = f"rabbit://guest:guest@127.0.0.1:{closed_port}/"
    result, _ = _preflight(machine)
    assert result.returncode == 1
    line = next(x for x in result.stderr.splitlines() if x.startswith("  RabbitMQ on "))
    assert "apt-get install -y rabbitmq-server" in line
    assert "PostgreSQL on" not in result.stderr and "Redis on" not in result.stderr


def test_a_python_too_old_is_named(machine: dict[str, str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process: no older interpreter is at hand, so the minimum is raised.
    monkeypatch.setattr(preflight, "MIN_PYTHON", (99, 0))
    found = preflight.problems(machine, read_packages())
    assert len(found) == 1
    assert found[0].startswith(f"Python {sys.version_info.major}.{sys.version_info.minor}.")
    assert "Herald needs 99.0 or newer" in found[0]
    monkeypatch.setattr(preflight, "MIN_PYTHON", (3, 11))
    assert preflight.problems(machine, read_packages()) == []


def test_missing_packages_lists_names_only(machine: dict[str, str]) -> None:
    _hide_nginx(machine)
    result, _ = _preflight(machine, "--missing-packages")
    assert (result.returncode, result.stdout, result.stderr) == (0, "nginx-light\n", "")
    machine["HERALD_TEST_CHROMIUM"] = "/nonexistent/chromium"
    result, _ = _preflight(machine, "--missing-packages")
    assert result.stdout.split() == [p.name for p in read_packages()]


def _make(target: str, env: dict[str, str], *variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), target,
                           f"PYTHON={sys.executable}", *variables],
                          env=env, capture_output=True, text=True, timeout=60)


def test_make_test_stops_before_building_or_running_anything(
        machine: dict[str, str], tmp_path: Path) -> None:
    _hide_nginx(machine)
    # A stand-in venv: should make get past the preflight, its python and
    # pytest would record the call (and fail at once rather than install).
    venv = tmp_path / "venv"
    calls = tmp_path / "calls"
    for name in ("python", "pytest", "pip"):
        _executable(venv / "bin" / name, f'echo "{name} $*" >> {calls}; exit 1')
    started = time.monotonic()
    result = _make("test", machine, f"VENV={venv}")
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < DEADLINE + 2
    assert "nginx-light" in result.stderr and "make test-deps" in result.stderr
    assert not calls.exists(), calls.read_text()


def test_make_test_deps_installs_exactly_the_missing_packages(
        machine: dict[str, str], tmp_path: Path) -> None:
    _hide_nginx(machine)
    chromium = Path(machine["HERALD_TEST_CHROMIUM"])
    chromium.unlink()
    log = tmp_path / "apt.log"
    stubs = tmp_path / "stubs"
    sbin = machine["HERALD_PREFLIGHT_SYSTEM_DIRS"]
    # apt-get "installs" by creating the programs where the preflight looks.
    _executable(stubs / "apt-get", f"""echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> {log}
case "$1" in install)
  printf '#!/bin/sh\\n' > {sbin}/nginx; chmod 755 {sbin}/nginx
  printf '#!/bin/sh\\n' > {chromium}; chmod 755 {chromium};;
esac""")
    _executable(stubs / "service", f'echo "service $*" >> {log}')
    _executable(stubs / "sudo", '"$@"')
    machine["PATH"] = f"{stubs}:{machine['PATH']}"

    result = _make("test-deps", machine)
    assert result.returncode == 0, result.stdout + result.stderr
    packages = " ".join(p.name for p in read_packages())
    assert log.read_text().splitlines() == [
        "apt-get update -q DEBIAN_FRONTEND=noninteractive",
        f"apt-get install -y -q {packages} DEBIAN_FRONTEND=noninteractive",
        "service nginx stop",  # the package's own nginx would hold port 80
    ]

    # Run again: all there, so no apt-get at all (no network, no time).
    log.unlink()
    result = _make("test-deps", machine)
    assert result.returncode == 0, result.stderr
    assert "every package is installed" in result.stdout
    assert not log.exists()


def test_make_test_deps_fails_when_the_install_does_not_provide_the_program(
        machine: dict[str, str], tmp_path: Path) -> None:
    _hide_nginx(machine)
    stubs = tmp_path / "stubs"
    _executable(stubs / "apt-get")  # "succeeds" without installing anything
    _executable(stubs / "service")
    _executable(stubs / "sudo", '"$@"')
    machine["PATH"] = f"{stubs}:{machine['PATH']}"
    result = _make("test-deps", machine)
    assert result.returncode != 0
    assert "still missing after the install: nginx-light" in result.stderr


def _two_commands() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## Two commands\n(.*?)^## ", readme, re.S | re.M)
    assert match, "README.md has no '## Two commands' section"
    return match.group(1)


def test_the_readme_names_what_a_fresh_machine_needs() -> None:
    section = _two_commands()
    packages = read_packages()
    assert packages, f"{PACKAGES_FILE} lists no package"
    for package in packages:
        assert f"`{package.name}`" in section, f"README's Two commands lacks {package.name}"
    assert "make test-deps" in section
    assert "3.11" in section
    for service in SERVICES:
        assert service.name in section, service.name


def test_the_makefile_reads_the_list_and_runs_the_preflight_first() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^test-deps:\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no test-deps target"
    assert "tests/preflight.py --missing-packages" in recipe.group(1)
    test = re.search(r"^test: (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert test and test.group(1).split() == ["preflight"], "nothing may run before it"
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test-deps" in ci
    assert ci.index("make test-deps") < ci.index("make test\n")
    assert "apt-get install" not in ci, ".ci/run installs through make test-deps only"

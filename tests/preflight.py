"""Preflight of ``make test``: is this machine ready to run the test suite?

``make test`` runs this before it builds ``.venv`` or starts pytest. It checks,
in a few seconds:

- the Python that will build ``.venv`` is 3.11 or newer;
- every system package of ``tests/system-packages.txt`` is installed (its
  program is found where the tests look for it);
- PostgreSQL, RabbitMQ and Redis accept TCP connections where the tests will
  connect (``tests/conftest.py``'s ``HERALD_TEST_*`` variables, or their
  localhost defaults).

When something is missing it prints one message naming every missing
package with the command that installs it (``make test-deps``) and every
service that does not answer with the command that starts it, and exits 1.
``--missing-packages`` prints only the names of the missing packages, one a
line: ``make test-deps`` installs those.

It must not install, start or change anything, and must not import Herald
or any package outside the standard library: it runs with the system
``python3`` (possibly an old one, which it must be able to name) before
``.venv`` exists. Hence no syntax newer than Python 3.7 here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
PACKAGES_FILE = REPO / "tests" / "system-packages.txt"
MIN_PYTHON = (3, 11)
# Debian installs daemons such as nginx in /usr/sbin, which a normal user's
# PATH lacks; testing/processes.py's nginx_binary() looks there too. The
# variable exists so that the preflight's own tests can hide an installed
# nginx; nothing else should set it.
SYSTEM_DIRS_VARIABLE = "HERALD_PREFLIGHT_SYSTEM_DIRS"
DEFAULT_SYSTEM_DIRS = "/usr/sbin:/sbin"
# A local service answers (or refuses) at once; the timeout only bounds a
# remote host given in a HERALD_TEST_* variable that drops packets.
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Package:
    """One line of tests/system-packages.txt."""

    name: str
    program: str
    override: str | None
    needs: str

    def locate(self, env: Mapping[str, str]) -> str | None:
        """The program's path as the tests will find it, or None."""
        if self.override and env.get(self.override):
            return _executable(env[self.override])
        if os.path.isabs(self.program):
            return _executable(self.program)
        return (shutil.which(self.program, path=env.get("PATH", os.defpath))
                or shutil.which(self.program, path=_system_dirs(env)))

    def where(self, env: Mapping[str, str]) -> str:
        """Where locate() looked, in words, for the message."""
        if self.override and env.get(self.override):
            return f"{self.override}={env[self.override]} is not an executable file"
        if os.path.isabs(self.program):
            unset = f" and {self.override} is unset" if self.override else ""
            return f"no {self.program}{unset}"
        return f"no {self.program} on PATH nor in {_system_dirs(env) or '(no system dirs)'}"


@dataclass(frozen=True)
class Service:
    """A service the tests connect to, and how a Debian machine starts it."""

    name: str
    variable: str
    default_url: str
    default_port: int
    server: str
    package: str

    def address(self, env: Mapping[str, str]) -> tuple[str, int]:
        url = env.get(self.variable) or self.default_url
        try:
            parts = urlsplit(url)
            return parts.hostname or "127.0.0.1", parts.port or self.default_port
        except ValueError:  # e.g. a RabbitMQ URL listing several hosts
            return "127.0.0.1", self.default_port

    def start_command(self, env: Mapping[str, str], sudo: str) -> str:
        if not (shutil.which(self.server, path=env.get("PATH", os.defpath))
                or shutil.which(self.server, path=_system_dirs(env))):
            return (f"it is not installed: {sudo}apt-get install -y {self.package}, "
                    f"then start it")
        if self.name == "PostgreSQL":
            versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if p.is_dir())
            version = versions[-1] if versions else "<version>"
            return f"start it: {sudo}pg_ctlcluster {version} main start"
        if self.name == "RabbitMQ":
            return f"start it: {sudo}rabbitmq-server -detached"
        port = self.address(env)[1]
        return f"start it: {sudo}redis-server --daemonize yes --bind 127.0.0.1 --port {port}"


# The variables and defaults are tests/conftest.py's.
SERVICES = (
    Service("PostgreSQL", "HERALD_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres",
            5432, "pg_ctlcluster", "postgresql"),
    Service("RabbitMQ", "HERALD_TEST_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/", 5672,
            "rabbitmq-server", "rabbitmq-server"),
    Service("Redis", "HERALD_TEST_REDIS", "redis://127.0.0.1:6379", 6379, "redis-server",
            "redis-server"),
)


def _system_dirs(env: Mapping[str, str]) -> str:
    return env.get(SYSTEM_DIRS_VARIABLE, DEFAULT_SYSTEM_DIRS)


def _executable(path: str) -> str | None:
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def read_packages(path: Path = PACKAGES_FILE) -> list[Package]:
    """The packages of tests/system-packages.txt, in file order."""
    packages = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 3)
        if len(fields) != 4:
            raise SystemExit(f"{path}:{number}: expected 'package program override needs', "
                             f"got {line!r}")
        name, program, override, needs = fields
        packages.append(Package(name, program, None if override == "-" else override, needs))
    return packages


def missing_packages(env: Mapping[str, str], packages: list[Package]) -> list[Package]:
    return [p for p in packages if p.locate(env) is None]


def _unreachable(service: Service, env: Mapping[str, str]) -> str | None:
    """Why the service cannot be reached, or None when it accepts a connection."""
    host, port = service.address(env)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return f"{host}:{port} ({exc.strerror or exc})"


def _sudo() -> str:
    return "" if os.geteuid() == 0 else "sudo "


def problems(env: Mapping[str, str], packages: list[Package]) -> list[str]:
    """Every missing prerequisite, as paragraphs of the message; empty when ready."""
    paragraphs = []
    sudo = _sudo()
    if sys.version_info[:2] < MIN_PYTHON:
        version = ".".join(str(n) for n in sys.version_info[:3])
        paragraphs.append(
            f"Python {version} ({sys.executable}) is too old: Herald needs "
            f"{'.'.join(map(str, MIN_PYTHON))} or newer. Install it, then run e.g. "
            f"`make test PYTHON=python3.11`.")
    missing = missing_packages(env, packages)
    if missing:
        lines = ["Missing system packages (Debian names):"]
        lines += [f"  {p.name}: {p.where(env)}; needed by {p.needs}" for p in missing]
        names = " ".join(p.name for p in missing)
        lines.append(f"Install them with: make test-deps   (it runs {sudo}apt-get update && "
                     f"{sudo}apt-get install -y {names})")
        paragraphs.append("\n".join(lines))
    # Concurrently: the whole check stays within one connect timeout.
    with ThreadPoolExecutor(len(SERVICES)) as pool:
        checked = list(pool.map(lambda s: (s, _unreachable(s, env)), SERVICES))
    down = [(service, reason) for service, reason in checked if reason is not None]
    if down:
        lines = ["Services not answering (the tests use the machine's own):"]
        lines += [f"  {s.name} on {reason}: {s.start_command(env, sudo)}" for s, reason in down]
        lines.append("  (`bash .ci/run` starts whichever is down, installs the packages, "
                     "then runs make lint and make test.)")
        paragraphs.append("\n".join(lines))
    return paragraphs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missing-packages", action="store_true",
                        help="print the missing packages' names, one a line, and nothing else")
    args = parser.parse_args(argv)
    env = os.environ
    packages = read_packages()
    if args.missing_packages:
        for package in missing_packages(env, packages):
            print(package.name)
        return 0
    found = problems(env, packages)
    if found:
        print("make test: this machine lacks what the tests need; nothing was run.\n\n"
              + "\n\n".join(found), file=sys.stderr)
        return 1
    ready = [f"{p.program.rsplit('/', 1)[-1]} {p.locate(env)}" for p in packages]
    ready += [f"{s.name} {':'.join(map(str, s.address(env)))}" for s in SERVICES]
    print("preflight: ready: " + ", ".join(ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())

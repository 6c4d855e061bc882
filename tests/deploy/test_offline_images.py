"""deploy/offline-images/build.sh decides between upstream images and stand-ins.

Where a registry answers (``docker pull`` of the python image works) it
builds nothing, prints nothing and writes no settings: docker-compose.yml's
upstream defaults are used. Where none answers it builds the five stand-ins
(and the debootstrap base when it is missing) and prints the five
``HERALD_*_IMAGE`` settings. ``make compose-test`` runs the second case for
real on every CI run; these tests run both against a stand-in ``docker`` that
records its calls, so no engine is needed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO

BUILD = REPO / "deploy" / "offline-images" / "build.sh"
STAND_INS = ("python", "postgres", "rabbitmq", "redis", "nginx")

DOCKER = r"""#!/bin/sh
echo "docker $*" >> "$STANDIN/calls"
case "$1" in
    pull) [ -e "$STANDIN/registry" ] ;;
    image) [ -e "$STANDIN/have-base" ] ;;
    build) exit 0 ;;
esac
"""


@pytest.fixture
def standin(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(DOCKER)
    (bin_dir / "docker").chmod(0o755)
    for program in ("sh", "cat", "cp", "rm", "mktemp", "dirname", "printf", "timeout", "tail"):
        found = shutil.which(program)
        if found:
            (bin_dir / program).symlink_to(found)
    env = {"PATH": str(bin_dir), "STANDIN": str(tmp_path), "TMPDIR": str(tmp_path)}
    return tmp_path, env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(BUILD), *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def test_a_registry_that_answers_means_the_upstream_images(standin) -> None:
    tmp, env = standin
    (tmp / "registry").touch()
    result = _run(env, "--env", str(tmp / "images.env"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp / "images.env").exists()
    calls = (tmp / "calls").read_text().splitlines()
    assert calls == ["docker pull -q python:3.12-slim"], calls
    assert "using the upstream images" in result.stderr


def test_no_registry_builds_the_five_stand_ins_and_names_them(standin) -> None:
    tmp, env = standin
    (tmp / "have-base").touch()  # the debootstrap base exists: only the images are built
    result = _run(env, "--env", str(tmp / "images.env"))
    assert result.returncode == 0, result.stderr
    built = [line.split()[-1].rsplit("/", 1)[-1] for line in
             (tmp / "calls").read_text().splitlines() if line.startswith("docker build")]
    assert sorted(built) == sorted(STAND_INS), built
    settings = dict(line.split("=", 1) for line in (tmp / "images.env").read_text().split())
    assert settings == {f"HERALD_{name.upper()}_IMAGE": f"herald-offline/{name}:bookworm"
                        for name in STAND_INS}
    assert result.stdout.split() == (tmp / "images.env").read_text().split()
    # The python stand-in's copy of this machine's CA bundle does not stay behind.
    assert not (REPO / "deploy" / "offline-images" / "python" / "build-ca.crt").exists()

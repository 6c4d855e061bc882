"""pyproject.toml ships every Python package of the repository.

``herald`` is a namespace package assembled from directories whose names are
not import names (``common/``, ``services/ws-gateway/``), so setuptools is
given an explicit ``package-dir`` mapping and an explicit ``packages`` list.
An editable install finds a forgotten subpackage anyway; ``pip install .``
(the Docker images) silently leaves it out. These tests catch that.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = ("common", "services", "testing")


@pytest.fixture(scope="module")
def setuptools_conf() -> dict:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _package_name(directory: Path, package_dir: dict[str, str]) -> str | None:
    """The import name setuptools gives ``directory`` (None if unmapped)."""
    rel = directory.relative_to(REPO).as_posix()
    best: tuple[str, str] | None = None
    for name, root in package_dir.items():
        if rel == root or rel.startswith(root + "/"):
            if best is None or len(root) > len(best[1]):
                best = (name, root)
    if best is None:
        return None
    name, root = best
    rest = rel[len(root):].strip("/")
    return ".".join([name, *rest.split("/")]) if rest else name


def _package_dirs() -> list[Path]:
    found = []
    for root in SOURCE_ROOTS:
        for init in sorted((REPO / root).rglob("__init__.py")):
            if "__pycache__" not in init.parts:
                found.append(init.parent)
    return found


def test_every_package_directory_is_listed(setuptools_conf: dict) -> None:
    package_dir = setuptools_conf["package-dir"]
    packages = set(setuptools_conf["packages"])
    unmapped, unlisted = [], []
    for directory in _package_dirs():
        name = _package_name(directory, package_dir)
        if name is None:
            unmapped.append(directory.relative_to(REPO).as_posix())
        elif name not in packages:
            unlisted.append(f"{name} ({directory.relative_to(REPO).as_posix()})")
    assert not unmapped, f"directories with no package-dir mapping: {unmapped}"
    assert not unlisted, f"packages missing from [tool.setuptools] packages: {unlisted}"


def test_every_listed_package_exists(setuptools_conf: dict) -> None:
    package_dir = setuptools_conf["package-dir"]
    names = {_package_name(d, package_dir) for d in _package_dirs()}
    missing = sorted(set(setuptools_conf["packages"]) - names)
    assert not missing, f"listed packages without a directory holding __init__.py: {missing}"


def test_every_package_is_under_the_herald_namespace(setuptools_conf: dict) -> None:
    for name in [*setuptools_conf["package-dir"], *setuptools_conf["packages"]]:
        assert name.startswith("herald."), name
    for root in setuptools_conf["package-dir"].values():
        assert (REPO / root).is_dir(), f"package-dir points at a missing directory: {root}"


def test_console_script_and_config_entry_point() -> None:
    with (REPO / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"]["herald"] == "herald.cli.main:main"
    assert project["entry-points"]["oslo.config.opts"]["herald"] == (
        "herald.common.config:list_opts"
    )

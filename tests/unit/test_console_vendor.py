"""The console's vendored files are what their manifest says, and they ship.

``services/ws-gateway/console/vendor/manifest.json`` records, for each
third-party file copied into the console (the @msgpack/msgpack browser
bundle), its package, version and SHA-256. A file edited by hand, or
updated without its manifest, fails here. The package-data globs of
``pyproject.toml`` must cover every console file, or ``pip install .`` (the
Docker images) would serve a console with missing pieces.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATEWAY = REPO / "services" / "ws-gateway"
CONSOLE = GATEWAY / "console"
VENDOR = CONSOLE / "vendor"


def _manifest() -> list[dict[str, str]]:
    return json.loads((VENDOR / "manifest.json").read_text())["files"]


def test_vendored_files_match_the_manifest() -> None:
    entries = _manifest()
    assert entries, "the manifest lists no file"
    for entry in entries:
        path = VENDOR / entry["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == entry["sha256"], (
            f"{path.relative_to(REPO)} is not {entry['package']}@{entry['version']} as "
            f"recorded (sha256 {digest}); update vendor/manifest.json as vendor/README.md says")
        assert (VENDOR / entry["license_file"]).is_file(), entry["license_file"]


def test_msgpack_is_the_published_library() -> None:
    (entry,) = [e for e in _manifest() if e["file"] == "msgpack.min.js"]
    assert entry["package"] == "@msgpack/msgpack"
    assert entry["tarball_integrity"].startswith("sha512-")
    # The page loads the vendored file, not a copy elsewhere.
    assert 'src="vendor/msgpack.min.js"' in (CONSOLE / "index.html").read_text()


def test_every_vendored_file_is_accounted_for() -> None:
    listed = {e["file"] for e in _manifest()} | {e["license_file"] for e in _manifest()}
    present = {p.name for p in VENDOR.iterdir() if p.name not in ("manifest.json", "README.md")}
    assert present == listed, "vendor/ holds files the manifest does not describe"


def test_console_files_are_package_data() -> None:
    with (REPO / "pyproject.toml").open("rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["herald.ws_gateway"]
    for path in CONSOLE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(GATEWAY).as_posix()
            assert any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), (
                f"{rel} would be missing from a non-editable install")

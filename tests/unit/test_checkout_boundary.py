"""No test or script reaches outside the checkout (issue 28).

A fresh clone has nothing beside it: a test that reads ``../shared/...``, an
absolute path of one machine, or the home directory passes where it was
written and fails everywhere else. Two guards, because each sees what the
other cannot:

- a static scan of the test code, bench/, .ci/, the Makefile and deploy/'s
  scripts, which also covers the processes the tests start (herald services,
  nginx), and code that did not run this time;
- the runtime audit hook of tests/checkout_audit.py, installed by
  tests/conftest.py for every session, which sees every path this process
  really opened, however it was spelled.

This module checks that the scan finds nothing and that both guards catch
each kind of reach they are meant to; it must not itself touch anything
outside the checkout (its probes name paths that do not exist, and the hook
records the attempt before the call fails).
"""

from __future__ import annotations

import ast
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import checkout_audit

REPO = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve()
# Names that the test code binds to the checkout's root, by convention.
ROOT_NAMES = frozenset({"REPO", "ROOT", "REPO_ROOT"})
# Strings that look like a reach and are not, each with the reason.
ALLOWED = {
    ("tests/contract/test_messages.py", "../etc"):
        "a queue name the validation must refuse, never used as a path",
    (".ci/run", 'cd "$(dirname "$0")/.."'):
        "from .ci/ up to the checkout's own root",
    ("tests/deploy/test_makefile_compose.py", "HOME"):
        "sets HOME to the test's temporary directory for make and the stand-ins",
}


@dataclass(frozen=True)
class Reach:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _outside_prefixes() -> list[str]:
    # Home directories and this machine's layout; plus the directory that
    # holds the checkout, whatever it is called on the machine at hand,
    # unless it is a place a test may use anyway (a clone in /tmp).
    prefixes = ["/work/", "/home/", "/root/"]
    if not checkout_audit.is_allowed(str(REPO.parent)) and REPO.parent != Path("/"):
        prefixes.append(f"{REPO.parent}/")
    return prefixes


PARENT_DIR = re.compile(r"""(?:^|[/\s"'=])\.\.(?:[/\s"']|$)""")
SHELL_HOME = re.compile(r"(?:\$\{?HOME\b|\$\(HOME\)|(?:^|[\s=\"'])~/)")


def _string_reach(text: str) -> str | None:
    if PARENT_DIR.search(text) or text == "..":
        return f"climbs out with '..': {text!r}"
    for prefix in _outside_prefixes():
        if prefix in text:
            return f"absolute path outside the checkout: {text!r}"
    if text.startswith("~"):
        return f"home directory: {text!r}"
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _climb(node: ast.AST) -> tuple[int, bool]:
    """How many directories ``node`` climbs from ``__file__``, and whether it starts there."""
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        up, from_file = _climb(node.value)
        return up + 1, from_file
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents" and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)):
        up, from_file = _climb(node.value.value)
        return up + node.slice.value + 1, from_file
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr in ("resolve", "absolute"):
        return _climb(node.func.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Path" \
            and node.args:
        return _climb(node.args[0])
    if isinstance(node, ast.Name):
        return (0, True) if node.id == "__file__" else (0, False)
    return 0, False


def scan_python(relative: str, source: str) -> list[Reach]:
    """Reaches outside the checkout in a Python file at ``relative`` (to the root)."""
    tree = ast.parse(source)
    depth = len(Path(relative).parts)  # climbs that lead from the file to the root
    docstrings = _docstrings(tree)
    found = []

    def add(node: ast.AST, what: str) -> None:
        found.append(Reach(relative, getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and (relative, node.value) not in ALLOWED:
            what = _string_reach(node.value)
            if what:
                add(node, what)
        elif isinstance(node, ast.Attribute | ast.Subscript):
            up, from_file = _climb(node)
            if from_file and up > depth:
                add(node, f"climbs {up} directories from {relative}, above the checkout")
            if isinstance(node, ast.Attribute) and node.attr in ("parent", "parents") \
                    and isinstance(node.value, ast.Name) and node.value.id in ROOT_NAMES:
                add(node, f"the parent of the checkout ({node.value.id}.{node.attr})")
            if isinstance(node, ast.Attribute) and node.attr == "pardir":
                add(node, "os.pardir climbs out")
            if isinstance(node, ast.Attribute) and (
                    node.attr == "expanduser"
                    or (node.attr == "home" and isinstance(node.value, ast.Name)
                        and node.value.id == "Path")):
                add(node, f"home directory ({node.attr})")
        if isinstance(node, ast.Constant) and node.value == "HOME" \
                and (relative, "HOME") not in ALLOWED:
            add(node, "the HOME variable")
    return found


def scan_shell(relative: str, text: str) -> list[Reach]:
    """Reaches outside the checkout in a shell script or Makefile (comments skipped)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.strip()
        if not code or code.startswith("#"):
            continue
        if any(path == relative and allowed in code for path, allowed in ALLOWED):
            continue
        if PARENT_DIR.search(code):
            found.append(Reach(relative, number, f"climbs out with '..': {code}"))
        if SHELL_HOME.search(code):
            found.append(Reach(relative, number, f"home directory: {code}"))
        for prefix in _outside_prefixes():
            if prefix in code:
                found.append(Reach(relative, number, f"absolute path outside: {code}"))
    return found


def scanned_files() -> list[Path]:
    files = [*REPO.glob("tests/**/*.py"), *REPO.glob("bench/**/*.py"),
             *REPO.glob("testing/**/*.py"),
             *(p for p in REPO.glob(".ci/**/*") if p.is_file()), REPO / "Makefile",
             *REPO.glob("deploy/**/*.sh")]
    # The scanner's own file holds the patterns it looks for.
    return sorted(p for p in files if p.resolve() != THIS_FILE and ".venv" not in p.parts)


def scan(path: Path) -> list[Reach]:
    relative = path.relative_to(REPO).as_posix()
    text = path.read_text()
    if path.suffix == ".py":
        return scan_python(relative, text)
    return scan_shell(relative, text)


def test_no_test_or_script_reaches_outside_the_checkout() -> None:
    found = [reach for path in scanned_files() for reach in scan(path)]
    assert not found, "reaches outside the checkout:\n" + "\n".join(map(str, found))


def test_the_scan_covers_the_tests_and_scripts() -> None:
    scanned = {p.relative_to(REPO).as_posix() for p in scanned_files()}
    for expected in ("tests/deploy/test_compose.py", "tests/conftest.py", "tests/preflight.py",
                     "testing/topology.py", "bench/serial_loop.py", ".ci/run", "Makefile"):
        assert expected in scanned, expected
    assert "tests/unit/test_checkout_boundary.py" not in scanned
    # Every allowance still matches something, or it is stale and must go.
    for relative, text in ALLOWED:
        assert text in (REPO / relative).read_text(), (relative, text)


@pytest.mark.parametrize("source", [
    'SCHEMA = REPO / ".." / "shared" / "schemas" / "compose-spec.json"',
    'SCHEMA = Path("../shared/schemas/compose-spec.json")',
    "SCHEMA = Path(__file__).resolve().parents[3] / 'shared'",
    "SCHEMA = Path(__file__).parent.parent.parent.parent / 'shared'",
    "SHARED = REPO.parent / 'shared'",
    "SHARED = ROOT.parents[0]",
    "data = open('/work/shared/schemas/compose-spec.json').read()",
    "cache = Path.home() / '.cache' / 'herald'",
    "conf = os.path.expanduser('~/.herald/herald.conf')",
    "home = os.environ['HOME']",
    "up = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)",
])
def test_the_scan_finds_each_kind_of_reach(source: str) -> None:
    assert scan_python("tests/deploy/test_example.py", source), source


@pytest.mark.parametrize("source", [
    "REPO = Path(__file__).resolve().parents[2]",
    "HERE = Path(__file__).resolve().parent / 'schemas'",
    'SCHEMA = REPO / "tests" / "deploy" / "schemas" / "compose-spec.json"',
    'BROWSER = "/usr/bin/chromium"',
    'def f():\n    """Reads ``~/.herald/herald.conf`` never: see ../docs."""',
    'URL = "/v2/queues/jobs/messages"',
])
def test_the_scan_leaves_the_checkout_alone(source: str) -> None:
    assert not scan_python("tests/deploy/test_example.py", source), source


@pytest.mark.parametrize("line", [
    "\tjsonschema ../shared/schemas/compose-spec.json docker-compose.yml",
    "\tcp $(HOME)/.netrc .",
    'cat "$HOME/.config/herald"',
    "cp ~/.herald/herald.conf etc/",
    "ls /work/shared/schemas",
])
def test_the_shell_scan_finds_each_kind_of_reach(line: str) -> None:
    assert scan_shell("Makefile", line), line
    assert not scan_shell("Makefile", "# " + line), "comments are not scanned"


# The runtime hook. The probes name paths that cannot exist: the hook sees the
# attempt before the call fails, and nothing outside the checkout is touched.
PROBE_ROOT = Path(f"/nonexistent-herald-audit-probe-{uuid.uuid4().hex}")


def test_this_session_records_accesses_outside_the_checkout() -> None:
    probe = PROBE_ROOT / "compose-spec.json"
    with checkout_audit.expecting_outside_access() as seen:
        with pytest.raises(FileNotFoundError):
            probe.read_text()
        with pytest.raises(FileNotFoundError):
            open(probe, "w").close()
        with pytest.raises(FileNotFoundError):
            os.mkdir(PROBE_ROOT / "dir")
    assert [(event, path) for event, path, _ in seen] == [
        ("open", str(probe)), ("open", str(probe)), ("os.mkdir", str(PROBE_ROOT / "dir"))]
    assert all("test_this_session_records" in test for _, _, test in seen)
    # expecting_outside_access() kept them out of the session's verdict.
    assert not [r for r in checkout_audit.records() if str(PROBE_ROOT) in r[1]]


def test_a_relative_climb_is_recorded_as_the_path_it_reaches() -> None:
    relative = os.path.relpath(PROBE_ROOT / "x.json", os.getcwd())
    assert relative.startswith("..")
    with checkout_audit.expecting_outside_access() as seen:
        with pytest.raises(FileNotFoundError):
            open(relative)
    assert [path for _, path, _ in seen] == [str(PROBE_ROOT / "x.json")]


def test_the_checkout_and_temporary_directories_are_not_recorded(tmp_path: Path) -> None:
    with checkout_audit.expecting_outside_access() as seen:
        (REPO / "README.md").read_text()
        (tmp_path / "scratch").write_text("x")
        Path("/etc/hosts").read_text()  # the system's own configuration
    assert seen == []


@pytest.mark.parametrize(("path", "allowed"), [
    (str(REPO / "tests" / "deploy" / "schemas" / "compose-spec.json"), True),
    ("/tmp/pytest-of-root/pytest-1/x", True),
    ("/etc/ssl/certs/ca-certificates.crt", True),
    ("/usr/share/zoneinfo/UTC", True),
    ("/proc/self/status", True),
    ("/work/shared/schemas/compose-spec.json", False),
    ("/root/.cache/python-entrypoints/abc", False),
    ("/home/someone/.netrc", False),
])
def test_what_the_hook_allows(path: str, allowed: bool) -> None:
    assert checkout_audit.is_allowed(path) is allowed


def test_an_allowed_root_is_a_directory_not_a_name_prefix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkout_audit, "ALLOWED_ROOTS", ("/srv/herald",))
    assert checkout_audit.is_allowed("/srv/herald")
    assert checkout_audit.is_allowed("/srv/herald/tests/x.json")
    assert not checkout_audit.is_allowed("/srv/herald-other/x.json")
    assert not checkout_audit.is_allowed("/srv")


def test_library_caches_and_netrc_stay_out_of_the_home_directory() -> None:
    # stevedore wrote ~/.cache/python-entrypoints before tests/conftest.py
    # pointed XDG_CACHE_HOME at a session directory; it reads it once, at
    # import, so this fails if anything imports it before conftest does.
    from stevedore import _cache

    cache_home = os.environ["XDG_CACHE_HOME"]
    assert checkout_audit.is_allowed(cache_home) and not cache_home.startswith(str(Path.home()))
    assert _cache._c._dir == os.path.join(cache_home, "python-entrypoints")
    assert not os.path.exists(os.environ["NETRC"])

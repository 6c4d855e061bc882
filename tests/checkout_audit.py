"""Records every file the test process opens outside the checkout.

A test suite that reads a file beside the checkout (``../shared/...``) or
writes into the home directory passes on one machine and fails on a fresh
clone. ``install()`` adds a ``sys.addaudithook`` hook that looks at the
``open`` event (builtins.open, io.open and os.open, for reading and writing)
and at directory creation, removal, renames and listings, and records each
path outside the places a test may use:

- the checkout itself, the virtualenv and the Python installation (stdlib,
  site-packages);
- temporary directories (``tempfile.gettempdir()``, /tmp, /var/tmp, /dev/shm);
- the operating system's own files: /dev, /proc, /sys, /etc (TLS roots,
  hosts, time zones...), /usr, /lib, /lib64, /bin, /sbin.

tests/conftest.py installs it for the whole session and fails the run when
anything was recorded. The hook sees only this process: the processes the
tests start (herald services, nginx, chromium) are covered by
tests/unit/test_checkout_boundary.py's static scan of the test code instead.

It must not change what it observes: it never raises into the caller (an
exception in an audit hook would abort the audited operation), never touches
the file system itself, and returns at once for the many other audit
events.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Events whose first argument is a path the process reads or writes.
# os.rename's second argument (the destination) is checked too.
PATH_EVENTS = frozenset({"open", "os.mkdir", "os.remove", "os.rmdir", "os.rename",
                         "os.listdir", "os.scandir", "shutil.rmtree", "shutil.copyfile"})
SYSTEM_ROOTS = ("/dev", "/proc", "/sys", "/etc", "/usr", "/lib", "/lib64", "/bin", "/sbin")
TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")
# Enough to say what went wrong; a runaway loop must not eat memory.
MAX_RECORDS = 200


def _allowed_roots() -> tuple[str, ...]:
    roots: set[str] = {str(REPO), *SYSTEM_ROOTS, *TEMP_ROOTS, tempfile.gettempdir()}
    roots.update((sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix))
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    roots.update(p for p in sysconfig.get_paths().values() if p)
    # Both spellings: a path may arrive through a symlink or already resolved.
    roots.update([os.path.realpath(r) for r in roots])
    return tuple(sorted(r.rstrip("/") or "/" for r in roots if r))


ALLOWED_ROOTS = _allowed_roots()

_records: list[tuple[str, str, str]] = []
_installed = False
_lock = threading.Lock()


def is_allowed(path: str) -> bool:
    """True when a test may read or write ``path`` (absolute and normalised)."""
    return any(path == root or path.startswith(root + "/") for root in ALLOWED_ROOTS)


def _absolute(path: object) -> str | None:
    if isinstance(path, int):  # a file descriptor: opened before, or a pipe
        return None
    if isinstance(path, bytes | os.PathLike | str):
        # abspath, not realpath: resolving would stat the path, and a
        # relative path means the current directory at the time of the call.
        return os.path.abspath(os.fsdecode(path))
    return None


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event not in PATH_EVENTS:
        return
    try:
        paths = args[:2] if event == "os.rename" else args[:1]
        for raw in paths:
            path = _absolute(raw)
            if path is None or is_allowed(path):
                continue
            with _lock:
                if len(_records) < MAX_RECORDS:
                    test = os.environ.get("PYTEST_CURRENT_TEST", "(outside any test)")
                    _records.append((event, path, test))
    except Exception:  # noqa: BLE001 - a raising hook would break the audited call
        return


def install() -> None:
    """Start recording (once per process: audit hooks cannot be removed)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    sys.addaudithook(_hook)


def records() -> list[tuple[str, str, str]]:
    """(event, path, test) for each access outside the allowed places so far."""
    with _lock:
        return list(_records)


@contextmanager
def expecting_outside_access() -> Iterator[list[tuple[str, str, str]]]:
    """Collect, and keep out of the session's records, the accesses of a block.

    For the tests of this module, which must make the hook record something.
    """
    with _lock:
        start = len(_records)
    seen: list[tuple[str, str, str]] = []
    try:
        yield seen
    finally:
        with _lock:
            seen.extend(_records[start:])
            del _records[start:]


def report(found: list[tuple[str, str, str]]) -> str:
    lines = [f"  {path} ({event}, in {test})" for event, path, test in found]
    more = " (and possibly more: the record is full)" if len(found) >= MAX_RECORDS else ""
    return ("the tests read or wrote outside the checkout" + more + ":\n" + "\n".join(lines)
            + "\nA fresh clone has none of these; keep test data in the repository and "
            "write to tmp_path (tests/checkout_audit.py lists what is allowed).")

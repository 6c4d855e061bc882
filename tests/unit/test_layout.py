"""The tree stays readable: a map of ``herald.storage`` and modules of at most 400 lines.

Issue 21 ("One rule, one place") asks that a newcomer find each thing once:
``services/storage/__init__.py`` maps the package in its docstring (every
module named at the start of a line, with one line on what it is for), and
no module in services/, common/ or bench/ grows past ``MAX_LINES`` lines
(the Alembic migrations excepted: a migration is a record, not a module
anyone extends). A failure names every file at fault, with its line count,
so the fix is read from the message.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STORAGE = REPO / "services" / "storage"
#: Where the line limit applies.
LIMITED_ROOTS = ("services", "common", "bench")
MAX_LINES = 400


def _storage_map() -> str:
    tree = ast.parse((STORAGE / "__init__.py").read_text(encoding="utf-8"))
    return ast.get_docstring(tree) or ""


def _storage_modules() -> list[str]:
    """The import names below ``herald.storage``: module files and subpackages."""
    names = [path.stem for path in STORAGE.glob("*.py") if path.name != "__init__.py"]
    names += [path.name for path in STORAGE.iterdir()
              if path.is_dir() and (path / "__init__.py").exists()]
    return sorted(names)


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_storage_init_maps_every_module() -> None:
    docstring = _storage_map()
    # Named as a map entry: ``name`` (or ``name/`` for a subpackage) first on
    # its line, not merely mentioned in a sentence.
    entries = set(re.findall(r"^\s*(?:[-*]\s+)?``([a-z_0-9]+)/?``", docstring, re.MULTILINE))
    missing = [name for name in _storage_modules() if name not in entries]
    assert not missing, (
        "services/storage/__init__.py does not map these modules of herald.storage "
        f"(a line starting with ``name`` each): {', '.join(missing)}")
    stale = sorted(entries - set(_storage_modules()))
    assert not stale, (
        "services/storage/__init__.py maps modules that do not exist: " + ", ".join(stale))


def test_no_module_over_400_lines() -> None:
    over = []
    for root in LIMITED_ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            relative = path.relative_to(REPO)
            if "migrations" in relative.parts:
                continue
            lines = _line_count(path)
            if lines > MAX_LINES:
                over.append(f"{relative.as_posix()} ({lines} lines)")
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(over)

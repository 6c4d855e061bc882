"""The README's code blocks, for the tests and scripts that run them as written.

A newcomer copies README.md's examples first, so tests/e2e/test_readme.py
runs them against ``herald run`` and ``make compose-test``
(tests/deploy/compose_run.py) through the compose load balancer.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def block(language: str, starts_with: str) -> str:
    """The first ```language block of README.md that starts with ``starts_with``."""
    for match in re.finditer(rf"```{language}\n(.*?)```", README.read_text(), re.S):
        if match.group(1).startswith(starts_with):
            return match.group(1)
    raise AssertionError(f"README.md has no {language} block starting with {starts_with!r}")

"""Fixtures of the fault tests: the end-to-end ``topology`` and its backends.

The fault scenarios run Herald as processes exactly as ``tests/e2e`` does;
they reuse its fixtures (and its hook that attaches the services' logs to a
failed test's report) rather than define their own.
"""

from __future__ import annotations

from tests.e2e.conftest import (  # noqa: F401  (fixtures and a hook, by name)
    backends,
    local_topology,
    pytest_runtest_makereport,
    topology,
)

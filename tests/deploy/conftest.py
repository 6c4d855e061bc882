"""Shared helpers of the deployment-file tests: where the repository is.

These tests read docker-compose.yml, deploy/ and the Procfile; they start no
service (the end-to-end ones are in tests/e2e/test_operations.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo() -> Path:
    return REPO

"""The README's examples run as written against ``herald run``.

A newcomer copies them first; an example that drifted from the API is a
broken front door. The curl block and the python-zaqarclient block are taken
from README.md itself, with only the port changed to the test's free port.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from herald.testing.topology import Topology
from tests.readme import block


@pytest.fixture
def herald_url(local_topology: Topology) -> str:
    service = local_topology.embedded("run", cwd=local_topology.workdir / "readme")
    assert service.url
    return service.url


def test_readme_python_example(herald_url: str) -> None:
    code = block("python", "import uuid").replace("http://127.0.0.1:8888", herald_url)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "working on {'task': 'resize', 'image': 42}" in result.stdout
    assert "{'messages': {'free': 0, 'claimed': 0, 'total': 0}}" in result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_example(herald_url: str) -> None:
    script = block("sh", "H=(").replace("http://127.0.0.1:8888", herald_url)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = re.findall(r"HTTP/1\.1 (\d{3}) ", result.stdout)
    # ping, create queue, delete claimed message, delete queue
    assert statuses == ["204", "201", "204", "204"], result.stdout
    assert '"claimed": 1' in result.stdout  # the stats after the delete

"""A bounded schemathesis run against ``herald run``: no 5xx, replies match the document.

The schemathesis CLI (``schemathesis run``) is pointed at the running
service's ``/openapi.json`` with every phase (examples, coverage, fuzzing,
stateful) and the conformance checks: ``not_a_server_error`` and the status
code, content type, header and body schema checks. Valid Client-ID and
project headers are sent with every request so that generated requests get
past the pipeline into the handlers.

Bounded for CI: a handful of examples per operation and ``--max-time``
(``HERALD_SCHEMATHESIS_SECONDS``, default 30). The full report is printed,
and attached to a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from herald.testing.topology import Topology

REPO = Path(__file__).resolve().parents[2]
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


def _schemathesis() -> list[str]:
    script = Path(sys.executable).with_name("schemathesis")
    if script.exists():
        return [str(script)]
    pytest.importorskip("schemathesis")  # a test extra; `make test` installs it
    return [sys.executable, "-m", "schemathesis.cli"]


def test_schemathesis_finds_no_5xx_and_no_nonconforming_reply(
        local_topology: Topology, tmp_path: Path) -> None:
    seconds = os.environ.get("HERALD_SCHEMATHESIS_SECONDS", "30")
    service = local_topology.embedded("run", cwd=tmp_path / "embedded")
    argv = [*_schemathesis(), "run", f"{service.url}/openapi.json",
            "--checks", CHECKS, "--max-examples", "5", "--max-time", seconds,
            "--workers", "1", "--request-timeout", "15", "--no-color", "--seed", "1",
            "-H", f"Client-ID: {uuid.uuid4()}", "-H", f"X-Project-ID: st-{uuid.uuid4().hex[:8]}"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
           "PYTHONPATH": str(REPO)}
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=int(seconds) + 120)
    output = result.stdout + result.stderr
    print(output[-6000:])
    assert service.running(), "herald run died under schemathesis"
    assert result.returncode == 0, output[-12000:]

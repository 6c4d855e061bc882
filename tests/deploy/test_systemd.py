"""deploy/systemd: templated units that ``systemd-analyze verify`` accepts.

``systemd-analyze verify`` runs on copies whose ExecStart points at this
environment's ``herald`` (it insists the binary exists), one instance of each
template. Warnings count as failures: verify exits 0 on an unknown key. A
parser test checks what verify does not: restart on failure, SIGTERM to
stop, a real herald subcommand, the instance name feeding the right option,
and systemd notification (herald sends READY=1, see herald.common.health).
If systemd-analyze is missing the verify test is skipped (the parser test
still runs) and says so.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from herald.cli.main import _parse
from tests.deploy.conftest import REPO

UNITS = REPO / "deploy" / "systemd"
INSTALLED_HERALD = "/opt/herald/venv/bin/herald"
TEMPLATES = {
    "herald-api@.service": ("api", "OS_API__PORT=%i"),
    "herald-ws-gateway@.service": ("ws-gateway", "OS_WS_GATEWAY__PORT=%i"),
    "herald-storage@.service": ("storage", "OS_STORAGE__HEALTH_PORT=%i"),
}


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       empty_lines_in_values=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def _herald() -> str:
    script = Path(sys.executable).with_name("herald")
    assert script.exists(), script
    return str(script)


def test_templates_parse(tmp_path: Path) -> None:
    names = {p.name for p in UNITS.iterdir()}
    assert set(TEMPLATES) | {"herald-db-upgrade.service", "herald.target"} <= names
    for name, (command, instance_env) in TEMPLATES.items():
        unit = _unit(UNITS / name)
        service = unit["Service"]
        exec_start = service["ExecStart"].split()
        assert exec_start[0] == INSTALLED_HERALD
        args, rest = _parse(exec_start[1:])
        assert args.command == command and rest == ["--config-file",
                                                    "/etc/herald/herald.conf"], name
        assert instance_env in UNITS.joinpath(name).read_text(), name
        assert service["Restart"] == "on-failure", name
        assert service["KillSignal"] == "SIGTERM", name
        assert service["Type"] == "notify" and service["NotifyAccess"] == "main", name
        assert int(service["TimeoutStopSec"]) >= 20, name
        assert service["User"] != "root", name
        assert unit["Install"]["WantedBy"] == "herald.target", name
    upgrade = _unit(UNITS / "herald-db-upgrade.service")["Service"]
    assert upgrade["Type"] == "oneshot"
    assert _parse(upgrade["ExecStart"].split()[1:3])[0].command == "db"
    for name in ("herald-api@.service", "herald-storage@.service"):
        assert "herald-db-upgrade.service" in _unit(UNITS / name)["Unit"]["Requires"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed: only the parser test ran")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    herald = _herald()
    paths = []
    for source in UNITS.iterdir():
        text = source.read_text().replace(INSTALLED_HERALD, herald)
        # A template is verified through an instance of it.
        name = source.name.replace("@.", "@8888.")
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(paths)],
                            capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert not [line for line in output.splitlines() if str(tmp_path) in line], output


def test_verify_catches_mistakes(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "herald-api@8888.service"
    unit.write_text((UNITS / "herald-api@.service").read_text()
                    .replace(INSTALLED_HERALD, _herald()).replace("Type=notify", "Typ=notify"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert "Unknown key" in result.stdout + result.stderr

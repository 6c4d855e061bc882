"""docker-compose.yml: valid Compose, and wired to Herald as it really is.

No Docker engine runs here, so the file is kept correct by these checks:

- it validates against the Compose Specification's JSON schema (draft-07),
  vendored in ``tests/deploy/schemas/`` with its provenance and licence
  (``NOTICE.md``, ``LICENSE``), so that nothing outside the checkout is read;
- every Herald service's command is a real ``herald`` subcommand (the CLI's
  own argparse parser decides);
- every ``OS_<GROUP>__<OPTION>`` variable names a real option;
- scaled services (storage, api, ws-gateway) have no container_name and no
  host ports, only ``lb`` publishes ports, every long-running service has a
  health check, ``depends_on`` uses conditions, data lives in named volumes,
  and a one-shot ``herald db upgrade`` runs before workers and apis start;
- health check URLs, nginx's backends and the Procfile agree with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from oslo_config import cfg

from herald.cli.main import _parse
from herald.common import config
from tests.deploy.conftest import REPO

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA = SCHEMA_DIR / "compose-spec.json"
SCALED = ("storage", "api", "ws-gateway")
HERALD_SERVICES = ("migrate", *SCALED)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_vendored_schema_is_the_recorded_one() -> None:
    # NOTICE.md names the upstream commit and the copy's sha256: an edited or
    # replaced schema without updated provenance fails here.
    notice = (SCHEMA_DIR / "NOTICE.md").read_text()
    recorded = re.search(r"sha256 of the copy \| `([0-9a-f]{64})`", notice)
    assert recorded, "NOTICE.md records no sha256 of compose-spec.json"
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == recorded.group(1)
    assert re.search(r"upstream commit \| `[0-9a-f]{7,40}`", notice)
    assert "github.com/compose-spec/compose-spec" in notice
    assert "Apache License" in (SCHEMA_DIR / "LICENSE").read_text()
    assert SCHEMA.resolve().is_relative_to(REPO)


def test_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    # The schema really constrains services: a typo in a key is an error.
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["depends_onn"] = ["storage"]
    schema = json.loads(SCHEMA.read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_topology_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"rabbitmq", "postgres", "redis", "migrate",
                                        "storage", "api", "ws-gateway", "lb"}


def test_commands_are_herald_subcommands(compose: dict[str, Any]) -> None:
    for name in HERALD_SERVICES:
        service = compose["services"][name]
        command = service["command"]
        assert isinstance(command, list), f"{name}: exec form, no shell"
        args, rest = _parse(command)  # argparse exits on an unknown subcommand
        assert not rest, f"{name}: unknown arguments {rest}"
        assert args.command == command[0]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (REPO / service["build"]["dockerfile"]).exists()
    assert compose["services"]["migrate"]["command"] == ["db", "upgrade"]


def test_every_os_variable_names_a_real_option(compose: dict[str, Any]) -> None:
    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    seen = 0
    for name, service in compose["services"].items():
        for key in _env(service):
            if not key.startswith("OS_"):
                continue
            seen += 1
            match = re.fullmatch(r"OS_([A-Z0-9_]+?)__([A-Z0-9_]+)", key)
            assert match, f"{name}: {key} is not OS_<GROUP>__<OPTION>"
            group, option = match.group(1).lower(), match.group(2).lower()
            if group == "default":
                assert option in conf, f"{name}: {key}: no [DEFAULT] {option}"
            else:
                assert group in conf, f"{name}: {key}: no group [{group}]"
                assert option in conf[group], f"{name}: {key}: no [{group}] {option}"
    assert seen >= 10


def test_only_lb_publishes_ports(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "lb":
            assert sorted(p.split(":")[-1] for p in service["ports"]) == ["8888", "9000"]
        else:
            assert "ports" not in service, f"{name} publishes host ports"


def test_scaled_services_have_no_fixed_names(compose: dict[str, Any]) -> None:
    for name in SCALED:
        service = compose["services"][name]
        assert "container_name" not in service, name
        assert "hostname" not in service, name
        assert "ports" not in service, name


def test_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name == "migrate":
            assert "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no health check"
    # Herald's checks read each service's own readiness endpoint.
    ports = {"storage": _env(services["storage"])["OS_STORAGE__HEALTH_PORT"],
             "api": _env(services["api"])["OS_API__PORT"],
             "ws-gateway": _env(services["ws-gateway"])["OS_WS_GATEWAY__PORT"]}
    for name, port in ports.items():
        url = _env(services[name])["HERALD_HEALTHCHECK_URL"]
        assert url == f"http://127.0.0.1:{port}/readyz", (name, url)
        assert "HERALD_HEALTHCHECK_URL" in " ".join(services[name]["healthcheck"]["test"])
    assert _env(services["storage"])["OS_STORAGE__HEALTH_BIND"] == "0.0.0.0"
    assert _env(services["api"])["OS_API__BIND"] == "0.0.0.0"
    assert _env(services["ws-gateway"])["OS_WS_GATEWAY__BIND"] == "0.0.0.0"


def test_start_up_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on")
        if depends is None:
            continue
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in services, (name, target)
            assert spec.get("condition") in ("service_started", "service_healthy",
                                             "service_completed_successfully"), (name, target)
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("storage", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully", name
        assert _env(services[name])["OS_STORAGE__MIGRATE_ON_START"] == "false"
    for name in SCALED:
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    for name in ("api", "ws-gateway"):
        assert services["lb"]["depends_on"][name]["condition"] == "service_healthy"


def test_named_volumes_for_data(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    data_paths = {"postgres": "/var/lib/postgresql/data", "rabbitmq": "/var/lib/rabbitmq",
                  "redis": "/data"}
    for name, path in data_paths.items():
        mounts = compose["services"][name]["volumes"]
        sources = {m.split(":")[0] for m in mounts if m.split(":")[1] == path}
        assert sources and sources <= declared, f"{name}: {path} not on a named volume"
    for name in SCALED:
        assert "volumes" not in compose["services"][name], f"{name} must be stateless"


def test_lb_mounts_the_nginx_config_and_finds_the_services(compose: dict[str, Any]) -> None:
    lb = compose["services"]["lb"]
    for mount in lb["volumes"]:
        source = mount.split(":")[0]
        assert (REPO / source).is_file(), source
    backends = (REPO / "deploy" / "nginx" / "backends-compose.conf").read_text()
    api_port = _env(compose["services"]["api"])["OS_API__PORT"]
    ws_port = _env(compose["services"]["ws-gateway"])["OS_WS_GATEWAY__PORT"]
    assert f"default api:{api_port};" in backends
    assert f"default ws-gateway:{ws_port};" in backends


def _procfile(path: Path) -> dict[str, str]:
    # honcho's format: "<name>: <command>", comments and blank lines ignored.
    entries = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line)
        assert match, f"not a Procfile line: {line!r}"
        entries[match.group(1)] = match.group(2)
    return entries


def test_procfile_runs_the_compose_services(compose: dict[str, Any]) -> None:
    procfile = _procfile(REPO / "Procfile")
    # Same names as the compose services (the log prefixes match), every
    # long-running Herald service plus lb; infrastructure is the machine's.
    assert set(procfile) == {*SCALED, "lb"}
    assert set(procfile) <= set(compose["services"])
    for name in SCALED:
        words = procfile[name].split()
        herald = words.index("herald")
        args, rest = _parse(words[herald + 1:])
        assert not rest and args.command == compose["services"][name]["command"][0], name
    local_env = (REPO / "deploy" / "local.env").read_text()
    assert "OS_STORAGE__MIGRATE_ON_START=false" in local_env
    # The ports the Procfile gives api and ws-gateway are the ones lb proxies to.
    backends = (REPO / "deploy" / "nginx" / "backends-local.conf").read_text()
    api_port = re.search(r"OS_API__PORT=(\d+)", procfile["api"]).group(1)
    ws_port = re.search(r"OS_WS_GATEWAY__PORT=(\d+)", procfile["ws-gateway"]).group(1)
    assert f"server 127.0.0.1:{api_port};" in backends
    assert f"server 127.0.0.1:{ws_port};" in backends

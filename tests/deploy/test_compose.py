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
- health check URLs, nginx's backends and the Procfile agree with it;
- it works with Debian 12's Compose v1 (docker-compose 1.29) too: no key
  that 1.29's schema refuses (top-level ``name:`` and the like) and no
  interpolation it does not know;
- every image comes from a ``HERALD_*_IMAGE`` variable with today's default
  (the Herald image's base through the build argument ``PYTHON_IMAGE``), and
  the README and docs/operations.md name each variable.
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
        if name == "migrate":  # a one-shot: the image's check would mark it unhealthy
            assert service.get("healthcheck") == {"disable": True}
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
    assert f"server ws-gateway:{ws_port};" in backends


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


# What Debian 12's docker-compose 1.29 accepts, written down from its bundled
# compose_spec.json (compose/config/) plus 1.29.0's one addition, the
# `service_completed_successfully` condition. 1.29 validates with
# additionalProperties false, so any other key (top-level `name:`, `include:`,
# a service's `develop:`, a build's `additional_contexts:`, a health check's
# `start_interval:`) makes `docker-compose up` refuse the whole file, while
# the vendored, newer schema above accepts it.
COMPOSE_129_TOP = {"version", "services", "networks", "volumes", "secrets", "configs"}
COMPOSE_129_SERVICE = {
    "deploy", "build", "blkio_config", "cap_add", "cap_drop", "cgroup_parent", "command",
    "configs", "container_name", "cpu_count", "cpu_percent", "cpu_shares", "cpu_quota",
    "cpu_period", "cpu_rt_period", "cpu_rt_runtime", "cpus", "cpuset", "credential_spec",
    "depends_on", "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search",
    "domainname", "entrypoint", "env_file", "environment", "expose", "extends",
    "external_links", "extra_hosts", "group_add", "healthcheck", "hostname", "image", "init",
    "ipc", "isolation", "labels", "links", "logging", "mac_address", "mem_limit",
    "mem_reservation", "mem_swappiness", "memswap_limit", "network_mode", "networks",
    "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports",
    "privileged", "profiles", "pull_policy", "read_only", "restart", "runtime", "scale",
    "security_opt", "shm_size", "secrets", "sysctls", "stdin_open", "stop_grace_period",
    "stop_signal", "tmpfs", "tty", "ulimits", "user", "userns_mode", "volumes",
    "volumes_from", "working_dir"}
COMPOSE_129_BUILD = {"context", "dockerfile", "args", "labels", "cache_from", "network",
                     "target", "shm_size", "extra_hosts", "isolation"}
COMPOSE_129_HEALTHCHECK = {"disable", "interval", "retries", "test", "timeout", "start_period"}
COMPOSE_129_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _compose_129_problems(compose: dict[str, Any]) -> list[str]:
    problems = [f"top-level {key}" for key in compose
                if key not in COMPOSE_129_TOP and not key.startswith("x-")]
    for name, service in compose.get("services", {}).items():
        problems += [f"{name}.{key}" for key in service
                     if key not in COMPOSE_129_SERVICE and not key.startswith("x-")]
        build = service.get("build")
        if isinstance(build, dict):
            problems += [f"{name}.build.{key}" for key in build if key not in COMPOSE_129_BUILD]
        problems += [f"{name}.healthcheck.{key}" for key in service.get("healthcheck") or {}
                     if key not in COMPOSE_129_HEALTHCHECK]
        depends = service.get("depends_on")
        if isinstance(depends, dict):
            for target, spec in depends.items():
                problems += [f"{name}.depends_on.{target}.{key}" for key in spec
                             if key != "condition"]
                if spec.get("condition") not in COMPOSE_129_CONDITIONS:
                    problems.append(f"{name}.depends_on.{target}.condition")
    return problems


def test_compose_129_accepts_every_key(compose: dict[str, Any]) -> None:
    assert not _compose_129_problems(compose)


def test_compose_129_check_catches_v2_only_keys(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["name"] = "herald"
    broken["services"]["api"]["develop"] = {}
    broken["services"]["api"]["build"]["additional_contexts"] = {}
    broken["services"]["api"]["depends_on"]["storage"]["restart"] = True
    assert _compose_129_problems(broken) == [
        "top-level name", "api.develop", "api.build.additional_contexts",
        "api.depends_on.storage.restart"]


def test_interpolation_compose_129_understands() -> None:
    # 1.29 knows ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err} and
    # ${VAR?err}; a default that itself holds ${...} is Compose v2 only.
    text = "\n".join(line for line in (REPO / "docker-compose.yml").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    uses = re.findall(r"\$\{([^}]*)\}", text)
    assert uses
    for use in uses:
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*((:?-|:?\?)[^${}]*)?", use), use
    assert "${" not in "".join(re.findall(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", text))


# Every image the topology pulls or builds from, and the variable that names
# it; the defaults are today's images.
IMAGE_VARIABLES = {
    "postgres": ("HERALD_POSTGRES_IMAGE", "postgres:16-alpine"),
    "rabbitmq": ("HERALD_RABBITMQ_IMAGE", "rabbitmq:3.13-alpine"),
    "redis": ("HERALD_REDIS_IMAGE", "redis:7-alpine"),
    "lb": ("HERALD_NGINX_IMAGE", "nginx:1.27"),
}


def test_every_base_image_is_named_by_a_variable(compose: dict[str, Any]) -> None:
    # A mirror or a locally built image is chosen from the environment, never
    # by editing the file.
    services = compose["services"]
    for name, (variable, default) in IMAGE_VARIABLES.items():
        assert services[name]["image"] == f"${{{variable}:-{default}}}", name
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    for name in HERALD_SERVICES:
        build = services[name]["build"]
        assert build["args"] == {"PYTHON_IMAGE": "${HERALD_PYTHON_IMAGE:-python:3.12-slim}"}
        assert "ARG PYTHON_IMAGE=python:3.12-slim" in dockerfile
        assert services[name]["image"] == "herald:latest"
    pulled = {name for name, service in services.items() if "build" not in service}
    assert pulled == set(IMAGE_VARIABLES)
    # The docs name every variable an operator can set.
    for doc in ("README.md", "docs/operations.md"):
        text = (REPO / doc).read_text()
        for variable in ("HERALD_PYTHON_IMAGE", *(v for v, _ in IMAGE_VARIABLES.values())):
            assert variable in text, f"{doc} does not name {variable}"

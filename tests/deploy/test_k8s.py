"""deploy/k8s: every kustomize overlay renders, validates and runs Herald as it is.

No cluster runs here. Each overlay is rendered with ``kubectl kustomize``
(the kubectl on the machine; Debian 12's own kubectl, kubernetes-client
1.20, bundles a kustomize too old for these files) and every object is
validated offline against the Kubernetes OpenAPI schemas of the PyPI package
``kubernetes-validate``, strictly (an unknown field is an error), for the
oldest and the newest Kubernetes version the package knows. Then the
objects are checked against Herald itself:

- Deployments for api, ws-gateway and storage run the real ``herald``
  subcommands, probe ``/healthz`` (liveness) and ``/readyz`` (readiness) on
  the port each service really listens on (its OS_<GROUP>__<OPTION>
  settings, else the option's default);
- each has a preStop drain and a terminationGracePeriodSeconds longer than
  the drain plus the service's own shutdown time;
- a PodDisruptionBudget per Deployment and an HPA for the gateway select
  the right pods; the migration Job runs ``herald db upgrade``;
- Services and Ingresses reach the pods' ports, the websocket Ingress keeps
  connections open for an hour;
- every container takes its settings from the ConfigMap and the Secret,
  every OS_ variable names a real option, and only the Secret names
  PostgreSQL, RabbitMQ and Redis;
- dev runs one replica of each, prod several.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from oslo_config import cfg

from herald.cli.main import _parse
from herald.common import config
from tests.deploy.conftest import REPO

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SERVICES = ("api", "ws-gateway", "storage")
# The pause before SIGTERM, then what each service may still take after it:
# the api lets in-flight requests finish for up to [api] drain_timeout; a
# storage worker finishes the calls in flight, at most [rpc] call_timeout;
# the gateway waits [ws_gateway] shutdown_timeout (both unset: call_timeout
# + 3 s; read below). Plus closing the broker connections and leaving the
# tooz group.
CLOSE_MARGIN = 5


def _versions() -> list[str]:
    known = sorted(set(kv_utils.all_versions()), key=lambda v: tuple(map(int, v.split("."))))
    return [known[0], known[-1]]


def _kubectl() -> str:
    binary = shutil.which("kubectl")
    assert binary, ("kubectl is not installed: these tests render deploy/k8s with "
                    "`kubectl kustomize` (kubectl 1.21 or newer)")
    return binary


def _render(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run([_kubectl(), "kustomize", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _render(K8S / "overlays" / request.param)


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    return conf


def _settings(objects: list[dict[str, Any]]) -> dict[str, str]:
    config_map = _one(objects, "ConfigMap", "herald-config")["data"]
    secret = _one(objects, "Secret", "herald-external")["stringData"]
    assert not set(config_map) & set(secret), "a setting in both the ConfigMap and the Secret"
    return {**config_map, **secret}


def _option(settings: dict[str, str], group: str, option: str) -> str:
    # What the container sees: the OS_ variable if set, else the default.
    key = f"OS_{group.upper()}__{option.upper()}"
    if key in settings:
        return settings[key]
    return str(_conf()[group][option])


def _drain(settings: dict[str, str], group: str, option: str) -> float:
    """An edge's drain deadline: the option, or its default (call_timeout + 3 s)."""
    value = _option(settings, group, option)
    if value == "None":
        return float(_option(settings, "rpc", "call_timeout")) + 3.0
    return float(value)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def _validation_errors(obj: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{obj['kind']}/{obj['metadata']['name']}: {error.message}"
    return None


def test_every_object_validates_offline(overlay) -> None:
    name, objects = overlay
    assert len(objects) >= 14
    for version in _versions():
        errors = [e for e in (_validation_errors(o, version) for o in objects) if e]
        assert not errors, f"{name} against Kubernetes {version}:\n" + "\n".join(errors)


def test_the_validation_catches_mistakes(overlay) -> None:
    _, objects = overlay
    deployment = yaml.safe_load(yaml.safe_dump(_one(objects, "Deployment", "herald-api")))
    # A misspelt field and a wrong type: both must be refused.
    _container(deployment)["livenessprobe"] = _container(deployment)["livenessProbe"]
    assert _validation_errors(deployment, _versions()[-1])
    deployment = yaml.safe_load(yaml.safe_dump(_one(objects, "Deployment", "herald-api")))
    deployment["spec"]["replicas"] = "three"
    assert _validation_errors(deployment, _versions()[-1])


def test_required_objects(overlay) -> None:
    _, objects = overlay
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for service in SERVICES:
        assert ("Deployment", f"herald-{service}") in kinds
        assert ("PodDisruptionBudget", f"herald-{service}") in kinds
    assert {("Service", "herald-api"), ("Service", "herald-ws-gateway"),
            ("HorizontalPodAutoscaler", "herald-ws-gateway"), ("Job", "herald-migrate"),
            ("Ingress", "herald-api"), ("Ingress", "herald-ws"),
            ("ConfigMap", "herald-config"), ("Secret", "herald-external")} <= kinds
    namespaces = {o["metadata"].get("namespace") for o in objects}
    assert len(namespaces) == 1 and None not in namespaces, namespaces


def test_commands_are_herald_subcommands(overlay) -> None:
    _, objects = overlay
    for service in SERVICES:
        container = _container(_one(objects, "Deployment", f"herald-{service}"))
        assert "command" not in container, "the image's ENTRYPOINT is herald"
        args, rest = _parse(container["args"])
        assert not rest and args.command == service
    job = _one(objects, "Job", "herald-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    images = {c["image"] for o in objects if o["kind"] in ("Deployment", "Job")
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert len(images) == 1, f"every Herald container runs one image: {images}"


def test_probes_on_the_ports_the_services_listen_on(overlay) -> None:
    _, objects = overlay
    settings = _settings(objects)
    listening = {
        "api": (_option(settings, "api", "bind"), _option(settings, "api", "port")),
        "ws-gateway": (_option(settings, "ws_gateway", "bind"),
                       _option(settings, "ws_gateway", "port")),
        "storage": (_option(settings, "storage", "health_bind"),
                    _option(settings, "storage", "health_port")),
    }
    for service, (bind, port) in listening.items():
        # Probes come from the kubelet, outside the pod's loopback; port 0
        # would turn the storage worker's health listener off.
        assert bind == "0.0.0.0", f"{service} listens on {bind} only"
        assert int(port) > 0, service
        container = _container(_one(objects, "Deployment", f"herald-{service}"))
        probes = {kind: container.get(kind) for kind in ("livenessProbe", "readinessProbe")}
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz", service
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz", service
        for kind, probe in probes.items():
            assert _port_number(container, probe["httpGet"]["port"]) == int(port), \
                (service, kind)


def test_drain_and_grace_period(overlay) -> None:
    _, objects = overlay
    settings = _settings(objects)
    shutdown = {
        "api": _drain(settings, "api", "drain_timeout"),
        "ws-gateway": _drain(settings, "ws_gateway", "shutdown_timeout"),
        "storage": float(_option(settings, "rpc", "call_timeout")),
    }
    for service in SERVICES:
        spec = _one(objects, "Deployment", f"herald-{service}")["spec"]["template"]["spec"]
        pre_stop = _container({"spec": {"template": {"spec": spec}}})["lifecycle"]["preStop"]
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", service
        drain = float(command[1])
        assert drain > 0
        grace = spec["terminationGracePeriodSeconds"]
        assert grace > drain + shutdown[service] + CLOSE_MARGIN, \
            f"{service}: {grace} s grace for a {drain} s drain and {shutdown[service]} s shutdown"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_budgets_autoscaler_and_services_select_the_right_pods(overlay) -> None:
    _, objects = overlay
    pods = {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
            for o in objects if o["kind"] == "Deployment"}
    for service in SERVICES:
        budget = _one(objects, "PodDisruptionBudget", f"herald-{service}")["spec"]
        chosen = [name for name, labels in pods.items() if _selects(budget["selector"], labels)]
        assert chosen == [f"herald-{service}"], (service, chosen)
        # maxUnavailable, not minAvailable: a single replica (dev) can still
        # be drained off a node.
        assert budget.get("maxUnavailable") == 1
    hpa = _one(objects, "HorizontalPodAutoscaler", "herald-ws-gateway")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "herald-ws-gateway"}
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    gateway = _container(_one(objects, "Deployment", "herald-ws-gateway"))
    assert gateway["resources"]["requests"]["cpu"], "CPU utilisation needs a request"
    for name, port_name in (("herald-api", "http"), ("herald-ws-gateway", "ws")):
        spec = _one(objects, "Service", name)["spec"]
        chosen = [d for d, labels in pods.items()
                  if _selects({"matchLabels": spec["selector"]}, labels)]
        assert chosen == [name]
        container = _container(_one(objects, "Deployment", name))
        assert [p["targetPort"] for p in spec["ports"]] == [port_name]
        assert port_name in {p["name"] for p in container["ports"]}


def test_ingresses_reach_the_services_and_keep_websockets_open(overlay) -> None:
    _, objects = overlay
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    backends = {}
    for name in ("herald-api", "herald-ws"):
        ingress = _one(objects, "Ingress", name)
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = path["backend"]["service"]
                assert service["name"] in services
                port_names = {p["name"] for p in services[service["name"]]["spec"]["ports"]}
                assert service["port"]["name"] in port_names
                backends[name] = service["name"]
    assert backends == {"herald-api": "herald-api", "herald-ws": "herald-ws-gateway"}
    ws = _one(objects, "Ingress", "herald-ws")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert int(ws[prefix + "proxy-read-timeout"]) >= 3600
    assert int(ws[prefix + "proxy-send-timeout"]) >= 3600
    # REST: a 503 is not retried on another api, and the read timeout lets
    # a long poll (wait up to 20 s) plus call_timeout finish.
    api = _one(objects, "Ingress", "herald-api")["metadata"]["annotations"]
    assert api[prefix + "proxy-next-upstream"] == "error"
    call_timeout = float(_option(_settings(objects), "rpc", "call_timeout"))
    assert 20 + call_timeout < int(api[prefix + "proxy-read-timeout"]) <= 20 + call_timeout + 10


def test_settings_come_from_the_configmap_and_the_secret(overlay) -> None:
    _, objects = overlay
    conf = _conf()
    settings = _settings(objects)
    for key in settings:
        match = re.fullmatch(r"OS_([A-Z0-9_]+?)__([A-Z0-9_]+)", key)
        assert match, f"{key} is not OS_<GROUP>__<OPTION>"
        group, option = match.group(1).lower(), match.group(2).lower()
        if group == "default":
            assert option in conf, key
        else:
            assert group in conf and option in conf[group], key
    assert settings["OS_STORAGE__MIGRATE_ON_START"] == "false"
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    for workload in workloads:
        container = workload["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": "herald-config"}},
                                        {"secretRef": {"name": "herald-external"}}]
        assert "env" not in container, "settings belong in the ConfigMap or the Secret"


def test_external_services_are_named_in_the_secret_only(overlay) -> None:
    _, objects = overlay
    secret = _one(objects, "Secret", "herald-external")["stringData"]
    assert secret["OS_STORAGE__CONNECTION"].startswith("postgresql")
    assert secret["OS_DEFAULT__TRANSPORT_URL"].startswith("rabbit://")
    assert secret["OS_COORDINATION__BACKEND_URL"].startswith("redis://")
    assert "OS_RPC__BUS_KEYS" in secret
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        for word in ("postgresql", "rabbit://", "redis://", "example.internal", "CHANGE-ME"):
            assert word not in text, f"{obj['kind']}/{obj['metadata']['name']} names {word}"


def test_replicas_per_overlay(overlay) -> None:
    name, objects = overlay
    replicas = {s: _one(objects, "Deployment", f"herald-{s}")["spec"]["replicas"]
                for s in SERVICES}
    hpa = _one(objects, "HorizontalPodAutoscaler", "herald-ws-gateway")["spec"]
    if name == "dev":
        assert replicas == {s: 1 for s in SERVICES}
        assert hpa["minReplicas"] == 1
    else:
        assert all(count >= 2 for count in replicas.values()), replicas
        assert hpa["minReplicas"] == replicas["ws-gateway"]


def test_every_overlay_is_tested() -> None:
    assert sorted(p.name for p in (K8S / "overlays").iterdir()) == sorted(OVERLAYS)

"""Prometheus metrics (issue 24): every process serves /metrics on its own operator listener.

Real processes, real traffic, real scrapes:

- ``herald run`` (one process, one listener): REST and websocket requests
  move the message counters, the HTTP (by route template), RPC and
  websocket series; the storage worker's backlog gauges follow the queues
  (capped at ``[metrics] max_queue_series``, per-project totals over all);
  a websocket subscription's push is counted as a delivery. The public REST
  and websocket ports have no /metrics. The Grafana dashboard's queries
  name only metrics this process exports.
- The distributed topology (two storage workers, an api): each queue's
  gauges come from exactly one worker, the workers' counters add up to the
  traffic, the api reports its HTTP and RPC series.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from herald.testing.polling import wait_until
from herald.testing.scrape import Scrape
from herald.testing.topology import REPO, Service, Topology, free_port, ws_url
from tests.webhook_receiver import WebhookReceiver
from tests.ws.client import WSClient

DASHBOARD = REPO / "deploy" / "grafana" / "herald-dashboard.json"
MESSAGES_ROUTE = "/v2/queues/{queue_name}/messages"


def _headers(project: str) -> dict[str, str]:
    return {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, int]]:
    topology = Topology(tmp_path_factory.mktemp("metrics-embedded"))
    ws_port = free_port()
    try:
        service = topology.embedded(ws_port=ws_port, env={
            "OS_METRICS__BACKLOG_INTERVAL": "1", "OS_METRICS__MAX_QUEUE_SERIES": "2"})
        yield service, ws_port
    finally:
        topology.stop_all()


def test_embedded_counts_rest_traffic_and_reports_backlog(
        embedded: tuple[Service, int]) -> None:
    service, _ = embedded
    assert service.metrics_url and service.url
    project = f"m-{uuid.uuid4().hex[:8]}"
    headers = _headers(project)
    api = f"{service.url}/v2/queues"
    before = Scrape.get(service.metrics_url)

    # Four queues: "deep" (3 messages), "mid" (2), "shallow" (1) and "later",
    # whose 3 messages are delayed (a delay needs the queue's default delay).
    response = requests.put(f"{api}/later", headers=headers, timeout=10,
                            json={"_default_message_delay": 60})
    assert response.status_code == 201, response.text
    for queue, count in (("deep", 3), ("mid", 2), ("shallow", 1), ("later", 3)):
        response = requests.post(f"{api}/{queue}/messages", headers=headers, timeout=10,
                                 json={"messages": [{"body": i, "ttl": 300}
                                                    for i in range(count)]})
        assert response.status_code == 201, response.text
    claim = requests.post(f"{api}/deep/claims?limit=1", headers=headers, timeout=10,
                          json={"ttl": 60, "grace": 60})
    assert claim.status_code == 201, claim.text
    claimed = claim.json()["messages"][0]
    deleted = requests.delete(f"{service.url}{claimed['href']}", headers=headers, timeout=10)
    assert deleted.status_code == 204
    claim = requests.post(f"{api}/deep/claims?limit=1", headers=headers, timeout=10,
                          json={"ttl": 60, "grace": 60})
    assert claim.status_code == 201
    empty = requests.post(f"{api}/never-posted/claims", headers=headers, timeout=10,
                          json={"ttl": 60, "grace": 60})
    assert empty.status_code == 204

    after = Scrape.get(service.metrics_url)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("herald_messages_posted_total") == 9
    assert delta("herald_messages_claimed_total") == 2
    assert delta("herald_messages_deleted_total") == 1
    assert delta("herald_empty_claims_total") == 1
    assert delta("herald_http_requests_total", method="POST", route=MESSAGES_ROUTE,
                 status="201") == 4
    assert delta("herald_http_requests_total", method="PUT", route="/v2/queues/{queue_name}",
                 status="201") == 1
    assert delta("herald_http_requests_total", method="POST",
                 route="/v2/queues/{queue_name}/claims", status="204") == 1
    assert delta("herald_http_request_duration_seconds_count", method="POST",
                 route=MESSAGES_ROUTE) == 4
    assert delta("herald_rpc_call_duration_seconds_count", method="message_post") == 4
    # Route templates only: no queue name or id ever becomes a label value.
    for labels, _ in after.series("herald_http_requests_total"):
        assert "deep" not in labels["route"] and claimed["id"] not in labels["route"]

    # The worker's backlog gauges, refreshed every second. After a claim, a
    # delete and a claim, "deep" holds 1 ready and 1 claimed message; the two
    # deepest queues ([metrics] max_queue_series = 2) are "later" (3) and
    # "deep" (2, before "mid" by name); "mid" and "shallow" count only in the
    # project's totals.
    def backlog() -> Scrape | None:
        scrape = Scrape.get(service.metrics_url)
        ready = scrape.value("herald_project_messages", project=project, state="ready")
        return scrape if ready == 4 else None

    scrape = wait_until(backlog, timeout=20, what="the backlog gauges of the project")
    expected = {("deep", "ready"): 1, ("deep", "claimed"): 1, ("deep", "delayed"): 0,
                ("later", "ready"): 0, ("later", "claimed"): 0, ("later", "delayed"): 3}
    assert {(labels["queue"], labels["state"]): value
            for labels, value in scrape.series("herald_queue_messages")
            if labels["project"] == project} == expected
    for state, value in (("ready", 4), ("claimed", 1), ("delayed", 3)):
        assert scrape.value("herald_project_messages", project=project, state=state) == value
    assert scrape.value("herald_queue_oldest_message_age_seconds", project=project,
                        queue="deep") > 0
    assert scrape.value("herald_project_oldest_message_age_seconds", project=project) > 0
    assert scrape.value("process_resident_memory_bytes") > 0  # the client's process metrics


def test_embedded_counts_websocket_frames_connections_and_pushes(
        embedded: tuple[Service, int]) -> None:
    service, ws_port = embedded
    assert service.metrics_url
    project = f"m-{uuid.uuid4().hex[:8]}"
    before = Scrape.get(service.metrics_url)
    url = f"ws://127.0.0.1:{ws_port}/"
    with WSClient(url, project) as listener, WSClient(url, project, binary=True) as poster:
        wait_until(lambda: Scrape.get(service.metrics_url).value("herald_ws_connections")
                   == before.value("herald_ws_connections") + 2, what="two connections")
        status, _ = listener.status_body("subscription_create", {"queue_name": "pushed",
                                                                 "ttl": 300})
        assert status == 201
        status, _ = poster.status_body("message_post", {
            "queue_name": "pushed", "messages": [{"body": {"n": 1}, "ttl": 300}]})
        assert status == 201
        push, _ = listener.recv()  # the notification, pushed on the listener's connection
        assert '{"n": 1}' in json.dumps(push), push

        def counted() -> Scrape | None:
            scrape = Scrape.get(service.metrics_url)
            delivered = scrape.value("herald_subscription_deliveries_total",
                                     kind="websocket", outcome="delivered")
            return scrape if delivered > before.value(
                "herald_subscription_deliveries_total", kind="websocket",
                outcome="delivered") else None

        during = wait_until(counted, timeout=15, what="the push counted as delivered")

    def delta(name: str, **labels: str) -> float:
        return during.value(name, **labels) - before.value(name, **labels)

    assert delta("herald_ws_frames_total", direction="in", format="json") == 1
    assert delta("herald_ws_frames_total", direction="in", format="msgpack") == 1
    assert delta("herald_ws_frames_total", direction="out", format="msgpack") == 1
    assert delta("herald_ws_frames_total", direction="out", format="json") == 2  # reply, push
    assert delta("herald_rpc_call_duration_seconds_count", method="subscription_create") == 1
    # Both connections closed: the gauge goes back.
    wait_until(lambda: Scrape.get(service.metrics_url).value("herald_ws_connections")
               == before.value("herald_ws_connections"), what="connections closed")


def test_embedded_counts_dead_letters_and_webhook_outcomes(
        embedded: tuple[Service, int], receiver: WebhookReceiver) -> None:
    service, _ = embedded
    assert service.metrics_url and service.url
    project = f"m-{uuid.uuid4().hex[:8]}"
    headers = _headers(project)
    api = f"{service.url}/v2/queues"
    before = Scrape.get(service.metrics_url)
    # A message claimed once, released, then claimed again is over its
    # _max_claim_count: the second claim moves it to the DLQ and gets nothing.
    assert requests.put(f"{api}/src", headers=headers, timeout=10, json={
        "_max_claim_count": 1, "_dead_letter_queue": "dead"}).status_code == 201
    for queue, subscriber in (("src", "/ok"), ("src", "/fail")):
        response = requests.post(f"{api}/{queue}/subscriptions", headers=headers, timeout=10,
                                 json={"subscriber": receiver.url + subscriber, "ttl": 300})
        assert response.status_code == 201, response.text
    assert requests.post(f"{api}/src/messages", headers=headers, timeout=10,
                         json={"messages": [{"body": "x", "ttl": 300}]}).status_code == 201
    claim = requests.post(f"{api}/src/claims", headers=headers, timeout=10,
                          json={"ttl": 60, "grace": 60})
    assert claim.status_code == 201, claim.text
    release = requests.delete(service.url + claim.headers["Location"], headers=headers,
                              timeout=10)
    assert release.status_code == 204, release.text
    again = requests.post(f"{api}/src/claims", headers=headers, timeout=10,
                          json={"ttl": 60, "grace": 60})
    assert again.status_code == 204, again.text

    def delta(scrape: Scrape, name: str, **labels: str) -> float:
        return scrape.value(name, **labels) - before.value(name, **labels)

    def pushed() -> Scrape | None:
        scrape = Scrape.get(service.metrics_url or "")
        done = (delta(scrape, "herald_subscription_deliveries_total", kind="webhook",
                      outcome="delivered") >= 1
                and delta(scrape, "herald_subscription_deliveries_total", kind="webhook",
                          outcome="retry") >= 1)
        return scrape if done else None

    scrape = wait_until(pushed, timeout=20, what="a delivered and a retried webhook push")
    assert delta(scrape, "herald_messages_dead_lettered_total") == 1
    assert delta(scrape, "herald_messages_claimed_total") == 1
    assert delta(scrape, "herald_empty_claims_total") == 1
    assert delta(scrape, "herald_subscription_deliveries_total", kind="webhook",
                 outcome="delivered") == 1  # one message, one healthy subscriber


def test_public_ports_have_no_metrics(embedded: tuple[Service, int]) -> None:
    service, ws_port = embedded
    unknown = requests.get(f"{service.url}/no-such-route", headers=_headers("p"), timeout=10)
    response = requests.get(f"{service.url}/metrics", headers=_headers("p"), timeout=10)
    # /metrics on the REST port is any unknown route: the same 404 and body.
    assert response.status_code == unknown.status_code == 404
    assert response.json() == unknown.json()
    gateway = requests.get(f"http://127.0.0.1:{ws_port}/metrics", timeout=10)
    assert gateway.status_code in (400, 404) and "herald_" not in gateway.text
    # And the operator listener serves /metrics only.
    assert service.metrics_url
    other = requests.get(service.metrics_url.replace("/metrics", "/v2/queues"), timeout=10)
    assert other.status_code == 404


def _dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel.get("targets", [])]
    assert len(expressions) >= 5
    names: set[str] = set()
    for expr in expressions:
        found = set(re.findall(r"\b(?:herald|process|python)_[a-z0-9_]+", expr))
        assert found, f"a dashboard query names no metric: {expr}"
        names |= found
    return names


def test_dashboard_queries_name_exported_metrics(embedded: tuple[Service, int]) -> None:
    service, _ = embedded
    assert service.metrics_url
    exported = Scrape.get(service.metrics_url).names()
    missing = sorted(_dashboard_metric_names() - exported)
    assert not missing, f"{DASHBOARD.name} queries metrics Herald does not export: {missing}"


def test_operations_queries_name_exported_metrics(embedded: tuple[Service, int]) -> None:
    service, _ = embedded
    assert service.metrics_url
    exported = Scrape.get(service.metrics_url).names()
    # The operator's queries: the promql blocks of docs/operations.md.
    text = (REPO / "docs" / "operations.md").read_text()
    queries = "\n".join(re.findall(r"```promql\n(.*?)```", text, re.DOTALL))
    named = set(re.findall(r"\bherald_[a-z0-9_]+", queries))
    assert {"herald_project_messages", "herald_project_oldest_message_age_seconds",
            "herald_http_requests_total", "herald_http_request_duration_seconds_bucket",
            "herald_subscription_deliveries_total"} <= named
    assert not sorted(named - exported)


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_distributed_each_queue_is_reported_by_one_worker(topology: Topology) -> None:
    env = {"OS_METRICS__BACKLOG_INTERVAL": "1"}
    services = topology.distributed(storage_workers=2, apis=1, env=env)
    workers = [s for s in services if s.name.startswith("storage")]
    api = next(s for s in services if s.name == "api")
    gateway = topology.ws_gateway(env=env)
    assert all(s.metrics_url for s in [*services, gateway])
    project = f"m-{uuid.uuid4().hex[:8]}"
    headers = _headers(project)
    depths = {f"q{i}": i + 1 for i in range(8)}
    for queue, depth in depths.items():
        response = requests.post(f"{api.url}/v2/queues/{queue}/messages", headers=headers,
                                 timeout=10, json={"messages": [{"body": n, "ttl": 300}
                                                                for n in range(depth)]})
        assert response.status_code == 201, response.text
    with WSClient(ws_url(gateway), project) as client:
        status, _ = client.status_body("message_post", {
            "queue_name": "q0", "messages": [{"body": "ws", "ttl": 300}]})
        assert status == 201
    depths["q0"] += 1

    def reported() -> list[Scrape] | None:
        scrapes = [Scrape.get(w.metrics_url or "") for w in workers]
        seen = [{labels["queue"]: value for labels, value in s.series("herald_queue_messages")
                 if labels["project"] == project and labels["state"] == "ready"}
                for s in scrapes]
        union = {q: v for per_worker in seen for q, v in per_worker.items()}
        return scrapes if union == depths and sum(map(len, seen)) == len(depths) else None

    scrapes = wait_until(reported, timeout=30, what="every queue reported by one worker")
    # Both workers own some of the eight queues (the ring spreads them).
    owned = [{labels["queue"] for labels, _ in s.series("herald_queue_messages")
              if labels["project"] == project} for s in scrapes]
    assert all(owned) and not owned[0] & owned[1]
    # Per-project totals: each worker's share; they add up.
    assert sum(s.value("herald_project_messages", project=project, state="ready")
               for s in scrapes) == sum(depths.values())
    # Counters: every posted message counted once, by the worker that stored it.
    assert sum(s.value("herald_messages_posted_total") for s in scrapes) == sum(depths.values())
    # The api's side: HTTP by route template, its RPC calls, the coalescer's batches.
    api_scrape = Scrape.get(api.metrics_url or "")
    assert api_scrape.value("herald_http_requests_total", method="POST", route=MESSAGES_ROUTE,
                            status="201") == 8
    assert api_scrape.value("herald_rpc_call_duration_seconds_count", method="message_post") == 8
    assert api_scrape.value("herald_rpc_batch_size_count") >= 1
    assert api_scrape.series("herald_queue_messages") == []  # edges run no backlog query
    gateway_scrape = Scrape.get(gateway.metrics_url or "")
    assert gateway_scrape.value("herald_ws_frames_total", direction="in", format="json") == 1
    assert gateway_scrape.value("herald_rpc_call_duration_seconds_count",
                                method="message_post") == 1
    # The api's public port answers /metrics as an unknown route.
    assert requests.get(f"{api.url}/metrics", headers=headers, timeout=10).status_code == 404


def test_dashboard_file_is_valid_grafana_json() -> None:
    dashboard = json.loads(Path(DASHBOARD).read_text())
    assert dashboard["title"] and dashboard["panels"] and dashboard["schemaVersion"]
    assert any(v.get("type") == "datasource"
               for v in dashboard.get("templating", {}).get("list", []))

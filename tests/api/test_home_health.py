"""Versions, JSON-home, ping and health over real HTTP (rest-v2.md §1-2)."""

from __future__ import annotations

import logging
import urllib.parse
import uuid

import pytest
import requests
import sqlalchemy as sa
from zaqarclient.queues.v2 import client as zclient
from zaqarclient.transport import errors as zerrors

from herald.storage import schema
from herald.storage.claims import ClaimController
from herald.storage.operation_status import SCRATCH_PROJECT_PREFIX
from tests.api.conftest import Client, Stack, assert_error

PUBLIC_RELS = {
    "rel/queues", "rel/queue", "rel/queue_stats", "rel/queue_share", "rel/queue_purge",
    "rel/messages", "rel/post_messages", "rel/messages_delete", "rel/message_delete",
    "rel/message_get", "rel/claim", "rel/post_claim", "rel/patch_claim", "rel/delete_claim",
    "rel/subscriptions_get", "rel/subscriptions_post", "rel/subscription",
    "rel/subscription_patch", "rel/ping",
}
ADMIN_RELS = {"rel/pools", "rel/pool", "rel/flavors", "rel/flavor", "rel/health"}


def test_versions(stack: Stack, api: Client) -> None:
    for resp in (api.get("/"), requests.get(stack.base_url + "/", timeout=10)):
        assert resp.status_code == 300
        assert resp.headers["Content-Type"] == "application/json"
        version = resp.json()["versions"][0]
        assert version["id"] == "2" and version["status"] == "CURRENT"
        assert version["links"] == [{"href": "/v2/", "rel": "self"}]
        assert version["media-types"][0]["type"] == "application/vnd.openstack.messaging-v2+json"


def test_home_document(api: Client) -> None:
    resp = api.get("/v2/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json-home"
    assert resp.headers["Cache-Control"] == "max-age=86400"
    resources = resp.json()["resources"]
    assert set(resources) == PUBLIC_RELS
    for rel, resource in resources.items():
        href = resource.get("href-template", resource.get("href"))
        assert href.startswith("/v2"), rel
        assert resource["hints"]["formats"] == {"application/json": {}}
    assert resources["rel/queue"]["hints"]["allow"] == ["GET", "PUT", "DELETE", "PATCH"]
    assert resources["rel/messages"]["href-template"] == (
        "/v2/queues/{queue_name}/messages{?marker,limit,echo,include_claimed}")
    assert resources["rel/post_messages"]["hints"]["accept-post"] == ["application/json"]
    # Zaqar 23's document, key for key where it differs from the api-ref.
    assert resources["rel/ping"] == {"href-template": "/v2/ping", "hints": {
        "allow": ["GET"], "formats": {"application/json": {}}}}
    for rel in ("rel/queue_share", "rel/queue_purge"):
        assert resources[rel]["hints"]["accept-post"] == ["application/json"]
    assert resources["rel/subscriptions_post"]["href-vars"] == {
        "queue_name": "param/queue_name", "limit": "param/subscription_limit"}
    # The tempest check: the template joins onto the endpoint.
    base = "http://example.com:8888/"
    template = resources["rel/queue"]["href-template"]
    assert urllib.parse.urljoin(base, template).format(queue_name="foo") == (
        "http://example.com:8888/v2/queues/foo")


def test_home_document_lists_admin_resources_in_admin_mode(stack: Stack, api: Client) -> None:
    stack.override("admin_mode", True)
    resources = api.get("/v2/").json()["resources"]
    assert set(resources) == PUBLIC_RELS | ADMIN_RELS
    assert resources["rel/health"]["href"] == "/v2/health"


def test_ping(api: Client) -> None:
    resp = api.get("/v2/ping")
    assert resp.status_code == 204
    assert resp.content == b""
    resp = api.head("/v2/ping")
    assert resp.status_code == 204


def test_ping_503_when_storage_is_down(stack: Stack, api: Client) -> None:
    stack.caller.all_down = True
    resp = api.get("/v2/ping")
    assert resp.status_code == 503
    assert resp.content == b""
    assert api.head("/v2/ping").status_code == 204  # HEAD is always 204


def test_health_is_not_routed_without_admin_mode(api: Client) -> None:
    assert_error(api.get("/v2/health", headers={"X-Roles": "admin"}), 404, "404 Not Found")
    assert_error(api.post("/v2/health"), 404, "404 Not Found")


@pytest.mark.parametrize("roles", [None, "", "member", "administrator,reader"])
def test_health_needs_the_admin_role(stack: Stack, api: Client, roles: str | None) -> None:
    stack.override("admin_mode", True)
    headers = {} if roles is None else {"X-Roles": roles}
    assert_error(api.get("/v2/health", headers=headers), 403, "Not authorized",
                 "You are not authorized to complete this action.")


ZAQAR_OPERATIONS = ["create_queue", "post_messages", "claim_messages", "list_messages",
                    "delete_messages", "delete_claim", "bulk_delete_messages", "delete_queue"]


def scratch_rows(stack: Stack) -> dict[str, int]:
    """Rows of the health probe's throw-away projects, per table (all should be 0)."""
    engine = sa.create_engine(stack.conf.storage.connection)
    try:
        with engine.connect() as conn:
            return {table.name: conn.execute(
                sa.select(sa.func.count()).select_from(table)
                .where(table.c.project.like(SCRATCH_PROJECT_PREFIX + "%"))).scalar_one()
                for table in (schema.queues, schema.messages, schema.claims,
                              schema.claim_history)}
    finally:
        engine.dispose()


def test_health_report(stack: Stack, api: Client) -> None:
    stack.override("admin_mode", True)
    api.post_messages("mine", 2)
    resp = api.get("/v2/health", headers={"X-Roles": "member,admin"})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    # Zaqar's keys in Zaqar's order, then Herald's.
    assert list(report) == ["storage_reachable", "operation_status", "message_volume",
                            "workers"]
    assert report["storage_reachable"] is True
    status = report["operation_status"]
    assert list(status) == [*ZAQAR_OPERATIONS, "ping"]
    for name, outcome in status.items():
        assert list(outcome) == ["succeeded", "seconds", "ref"], name
        assert outcome["succeeded"] is True and outcome["ref"] is None, (name, outcome)
        assert isinstance(outcome["seconds"], float) and 0 <= outcome["seconds"] < 10
    # The volume counts the users' messages, not the probe's 100.
    assert report["message_volume"]["total"] >= 2
    assert set(report["message_volume"]) == {"free", "claimed", "total"}
    assert stack.worker.member_id in report["workers"]
    # The operations really ran, on a queue of their own that is gone again.
    assert scratch_rows(stack) == {"queues": 0, "messages": 0, "claims": 0, "claim_history": 0}
    assert api.get("/v2/queues").json()["queues"] == [{"name": "mine",
                                                        "href": "/v2/queues/mine"}]


def _fail(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected by the test")


@pytest.mark.parametrize("broken,failed,skipped", [
    # The claim fails: what needs it is skipped with its ref, the rest runs.
    ("create", "claim_messages", ["delete_messages", "delete_claim"]),
    # Releasing the claim fails: nothing else depends on it.
    ("delete", "delete_claim", []),
])
def test_health_reports_a_failed_step_and_still_cleans_up(
        stack: Stack, api: Client, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, broken: str, failed: str,
        skipped: list[str]) -> None:
    stack.override("admin_mode", True)
    monkeypatch.setattr(ClaimController, broken, _fail)
    with caplog.at_level(logging.ERROR, logger="herald.storage.operation_status"):
        resp = api.get("/v2/health", headers={"X-Roles": "admin"})
    assert resp.status_code == 200, resp.text
    status = resp.json()["operation_status"]
    ref = status[failed]["ref"]
    assert status[failed]["succeeded"] is False and uuid.UUID(ref)
    for name in skipped:
        assert status[name] == {"succeeded": False, "seconds": 0.0, "ref": ref}
    for name in set(ZAQAR_OPERATIONS) - {failed, *skipped}:
        assert status[name]["succeeded"] is True, (name, status[name])
    # The ref leads from the report to the traceback in the worker's log.
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert scratch_rows(stack) == {"queues": 0, "messages": 0, "claims": 0, "claim_history": 0}


def test_health_through_zaqarclient_needs_the_admin_role(stack: Stack) -> None:
    stack.override("admin_mode", True)
    zaqar = zclient.Client(stack.base_url, version=2, conf={
        "auth_opts": {"backend": "noauth", "options": {"os_project_id": "ops"}}})
    # The client's noauth backend sends no roles: not an admin (Zaqar's 403).
    # With an admin token: tests/api/test_keystone.py.
    with pytest.raises(zerrors.ForbiddenError):
        zaqar.health()


def test_health_503_when_storage_is_down(stack: Stack, api: Client) -> None:
    stack.override("admin_mode", True)
    stack.caller.all_down = True
    assert_error(api.get("/v2/health", headers={"X-Roles": "admin"}), 503,
                 "Service temporarily unavailable", "Please try again in a few seconds.")


def test_health_still_needs_client_id_and_project(stack: Stack, api: Client) -> None:
    stack.override("admin_mode", True)
    assert_error(api.get("/v2/health", headers={"X-Roles": "admin"}, drop=("Client-ID",)),
                 400, "Missing header value")
    resp = api.request("PUT", "/v2/health", headers={"X-Roles": "admin"})
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET, OPTIONS"

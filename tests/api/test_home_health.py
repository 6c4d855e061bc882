"""Versions, JSON-home, ping and health over real HTTP (rest-v2.md §1-2)."""

from __future__ import annotations

import urllib.parse

import pytest
import requests

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
    assert resources["rel/ping"]["href"] == "/v2/ping"
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


def test_health_report(stack: Stack, api: Client) -> None:
    stack.override("admin_mode", True)
    resp = api.get("/v2/health", headers={"X-Roles": "member,admin"})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["storage_reachable"] is True
    assert set(report["message_volume"]) == {"free", "claimed", "total"}
    assert stack.worker.member_id in report["workers"]


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

"""Pre-signed URLs over REST: ``POST .../share`` (rest-v2.md §3) and requests
carrying ``URL-Signature`` (§11), including the refusals (forged, expired,
wrong method, path or project: all 404), the confirmation PUT with the signed
headers of a confirmation message, and python-zaqarclient's signed-url backend."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from zaqarclient.queues.v2 import client as zclient

from herald.common import signing
from tests.api.conftest import Client, Stack, assert_error

KEY = "test-secret"


@pytest.fixture
def keyed(stack: Stack, api: Client) -> Client:
    stack.override("secret_key", KEY, group="signed_url")
    return api


def signed_headers(share: dict, **changes: str) -> dict[str, str]:
    headers = {
        "URL-Signature": share["signature"],
        "URL-Expires": share["expires"],
        "URL-Methods": ",".join(share["methods"]),
        "URL-Paths": ",".join(share["paths"]),
        "X-Project-ID": share["project"],
    }
    headers.update(changes)
    return headers


def stranger(stack: Stack) -> Client:
    """A client of another project, with no credentials of its own."""
    return Client(stack.base_url)


def test_share_defaults(keyed: Client) -> None:
    resp = keyed.post("/v2/queues/q1/share", json_body={})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["project"] == keyed.project
    assert body["paths"] == ["/v2/queues/q1/messages"]
    assert body["methods"] == ["GET"]
    expires = dt.datetime.strptime(body["expires"], signing.EXPIRES_FORMAT).replace(
        tzinfo=dt.UTC)
    assert dt.timedelta(hours=23) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    assert body["signature"] == signing.signature(KEY, body["paths"], body["methods"],
                                                  keyed.project, body["expires"])
    # The queue is not created by sharing it.
    assert keyed.get("/v2/queues").json()["queues"] == []


def test_share_sorts_and_normalises(keyed: Client) -> None:
    resp = keyed.post("/v2/queues/q1/share", json_body={
        "paths": ["messages", "claims"], "methods": ["POST", "GET"],
        "expires": "2999-01-01T10:00:00.123456+02:00"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["paths"] == ["/v2/queues/q1/claims", "/v2/queues/q1/messages"]
    assert body["methods"] == ["GET", "POST"]
    assert body["expires"] == "2999-01-01T08:00:00"


@pytest.mark.parametrize(("document", "description"), [
    ({"project_id": "x"}, "Unknown keys"),
    ({"paths": ["queues"]}, "Invalid paths"),
    ({"methods": "GET"}, "`methods` should be a list"),
    ({"expires": "2001-01-01T00:00:00"}, "`expires` is lower than the current time"),
    ({"expires": "12345"}, "`expires` should be date format"),
    ({"expires": "tomorrow"}, "`expires` should be date format"),
])
def test_share_refusals(keyed: Client, document: dict, description: str) -> None:
    assert_error(keyed.post("/v2/queues/q1/share", json_body=document), 400,
                 description=description)


def test_share_empty_body_is_400(keyed: Client) -> None:
    assert_error(keyed.post("/v2/queues/q1/share"), 400,
                 description="Request body can not be empty")


def test_share_without_secret_key_is_400(api: Client) -> None:
    assert_error(api.post("/v2/queues/q1/share", json_body={}), 400,
                 description="secret_key")


def test_signed_request_is_served_without_other_credentials(stack: Stack,
                                                            keyed: Client) -> None:
    keyed.post_messages("q1", 2)
    share = keyed.post("/v2/queues/q1/share", json_body={"methods": ["GET", "POST"]}).json()
    other = stranger(stack)
    resp = other.get("/v2/queues/q1/messages", headers=signed_headers(share))
    assert resp.status_code == 200, resp.text
    assert [m["body"] for m in resp.json()["messages"]] == [{"n": 0}, {"n": 1}]
    # Path search: the signed collection also grants its members.
    message_id = resp.json()["messages"][0]["id"]
    resp = other.get(f"/v2/queues/q1/messages/{message_id}", headers=signed_headers(share))
    assert resp.status_code == 200, resp.text
    resp = other.post("/v2/queues/q1/messages", headers=signed_headers(share),
                      json_body={"messages": [{"body": "signed"}]})
    assert resp.status_code == 201, resp.text
    assert "signed" in [m["body"] for m in keyed.get(
        "/v2/queues/q1/messages?echo=true").json()["messages"]]


@pytest.mark.parametrize("change", [
    "forged", "expired", "method", "path", "project", "other-queue", "no-key"])
def test_refused_signed_requests_are_404(stack: Stack, keyed: Client, change: str) -> None:
    keyed.post_messages("q1", 1)
    keyed.post_messages("q2", 1)
    share = keyed.post("/v2/queues/q1/share", json_body={}).json()
    headers = signed_headers(share)
    method, path = "GET", "/v2/queues/q1/messages"
    if change == "forged":
        headers["URL-Signature"] = "0" * 64
    elif change == "expired":
        past = "2001-01-01T00:00:00"
        headers["URL-Expires"] = past
        # Correctly signed, but in the past.
        headers["URL-Signature"] = signing.signature(KEY, share["paths"], share["methods"],
                                                     share["project"], past)
    elif change == "method":
        method = "DELETE"
    elif change == "path":
        headers["URL-Paths"] = "/v2/queues/q2/messages"
    elif change == "project":
        headers["X-Project-ID"] = "somebody-else"
    elif change == "other-queue":
        path = "/v2/queues/q2/messages"
    elif change == "no-key":
        stack.conf.clear_override("secret_key", group="signed_url")
    resp = stranger(stack).request(method, path, headers=headers)
    assert_error(resp, 404, title="404 Not Found")
    assert "description" not in resp.json()


def test_signed_request_has_no_admin_role(stack: Stack, keyed: Client) -> None:
    stack.override("admin_mode", True)
    share = keyed.post("/v2/queues/q1/share", json_body={}).json()
    headers = signed_headers(share, **{"URL-Paths": "/v2/health", "X-Roles": "admin"})
    headers["URL-Signature"] = signing.signature(KEY, ["/v2/health"], ["GET"],
                                                 share["project"], share["expires"])
    assert_error(stranger(stack).get("/v2/health", headers=headers), 403)


def test_confirm_with_the_confirmation_headers(stack: Stack, keyed: Client) -> None:
    resp = keyed.post("/v2/queues/q1/subscriptions",
                      json_body={"subscriber": "http://127.0.0.1:9/hook"})
    sid = resp.json()["subscription_id"]
    path = f"/v2/queues/q1/subscriptions/{sid}/confirm"
    # The headers a SubscriptionConfirmation carries (notifications.md §6).
    expires = signing.format_expires(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    headers = {"URL-Signature": signing.signature(KEY, [path], ["PUT"], keyed.project, expires),
               "URL-Methods": "PUT", "URL-Paths": path, "X-Project-ID": keyed.project,
               "URL-Expires": expires}
    resp = stranger(stack).put(path, headers=headers, json_body={"confirmed": True})
    assert resp.status_code == 204, resp.text
    assert keyed.get(f"/v2/queues/q1/subscriptions/{sid}").json()["confirmed"] is True
    # The same headers grant nothing else.
    assert_error(stranger(stack).get(f"/v2/queues/q1/subscriptions/{sid}", headers=headers),
                 404)


def test_zaqarclient_signed_url_backend(stack: Stack, keyed: Client) -> None:
    project = f"zc-{uuid.uuid4().hex[:12]}"
    owner = zclient.Client(stack.base_url, version=2, conf={
        "auth_opts": {"backend": "noauth", "options": {"os_project_id": project}}})
    queue = owner.queue("test_queue")
    queue.post([{"ttl": 300, "body": "Post It!"}])
    signature = queue.signed_url()
    signed_client = zclient.Client(stack.base_url, version=2, conf={"auth_opts": {
        "backend": "signed-url",
        "options": {"paths": signature["paths"], "expires": signature["expires"],
                    "methods": signature["methods"], "signature": signature["signature"],
                    "os_project_id": signature["project"]}}})
    [message] = list(signed_client.queue("test_queue", auto_create=False).messages())
    assert message.body == "Post It!"

"""Websocket authentication with Keystone (websocket.md §4) and pre-signed
requests (§4.1).

keystonemiddleware validates the ``authenticate`` action's token against a
local fake Keystone (``tests.fake_keystone``, the HTTP boundary only). Until
a connection authenticates every action is 403; a refused token gets the
middleware's 401; an expiring token closes the connection with 4003. A
pre-signed request is served without authentication when its signature
covers the action's method and the queue, and refused (403) otherwise.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import websocket

from herald.common import coordination, signing
from herald.ws_gateway.service import WSGatewayService
from tests.fake_keystone import FakeKeystone
from tests.ws.client import WSClient
from tests.ws.conftest import GatewayHarness, make_conf, ws_url

KEY = "ws-secret"


@pytest.fixture(scope="module")
def secured(harness: GatewayHarness, keystone: FakeKeystone) -> WSGatewayService:
    """A gateway with auth_strategy=keystone and a signing key."""
    conf = make_conf(harness.tmp)
    keystone.configure(conf)
    conf.set_override("secret_key", KEY, group="signed_url")
    service = WSGatewayService(conf, harness.storage, coordination.new_member_id(),
                               local=harness.worker.local)
    harness.run(service.start())
    harness.gateways.append(service)
    return service


def authenticate(client: WSClient, token: str) -> dict:
    return client.call("authenticate", headers={**client.headers, "X-Auth-Token": token})


def test_actions_before_authentication_are_403(secured: WSGatewayService,
                                               project: str) -> None:
    with WSClient(ws_url(secured), project) as client:
        assert client.status_body("queue_list") == (403, {"error": "Not authentified."})


def test_bad_token_then_good_token(secured: WSGatewayService, keystone: FakeKeystone,
                                   project: str) -> None:
    with WSClient(ws_url(secured), project) as client:
        reply = authenticate(client, "bogus")
        assert reply["headers"]["status"] == 401
        assert reply["body"] == {"error": "Authentication failed."}
        assert client.status_body("queue_list")[0] == 403
        reply = authenticate(client, keystone.issue(project))
        assert reply == {"request": {"action": "authenticate", "body": {}, "headers": {},
                                     "api": "v2"},
                         "headers": {"status": 200}, "body": {"message": "Authentified."}}
        assert client.status_body("queue_create", {"queue_name": "q1"})[0] == 201
        assert client.status_body("queue_list") == (200, {"queues": [{"name": "q1"}]})
        # Re-authentication is allowed.
        assert authenticate(client, keystone.issue(project))["headers"]["status"] == 200


def test_authentication_is_per_connection(secured: WSGatewayService, keystone: FakeKeystone,
                                          project: str) -> None:
    with WSClient(ws_url(secured), project) as first:
        assert authenticate(first, keystone.issue(project))["headers"]["status"] == 200
        with WSClient(ws_url(secured), project) as second:
            assert second.status_body("queue_list")[0] == 403


def test_token_expiry_closes_with_4003(secured: WSGatewayService, keystone: FakeKeystone,
                                       project: str) -> None:
    with WSClient(ws_url(secured), project) as client:
        token = keystone.issue(project, lifetime=1.0)
        assert authenticate(client, token)["headers"]["status"] == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                opcode, data = client.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                assert int.from_bytes(data[:2], "big") == 4003
                assert data[2:].decode() == "Authentication expired."
                break
        else:
            pytest.fail("the connection was not closed when the token expired")


def _signed(project: str, queue: str, methods: list[str], **changes: object) -> dict:
    paths = [f"/v2/queues/{queue}/messages"]
    expires = signing.format_expires(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": project,
               "URL-Paths": paths, "URL-Methods": methods, "URL-Expires": expires,
               "URL-Signature": signing.signature(KEY, paths, methods, project, expires)}
    headers.update(changes)
    return headers


def test_signed_requests_without_authentication(secured: WSGatewayService,
                                                keystone: FakeKeystone, project: str) -> None:
    with WSClient(ws_url(secured), project) as owner:
        authenticate(owner, keystone.issue(project))
        status, _ = owner.status_body("message_post", {
            "queue_name": "shared", "messages": [{"body": "hello"}]})
        assert status == 201
    with WSClient(ws_url(secured), project) as guest:
        headers = _signed(project, "shared", ["GET"])
        status, body = guest.status_body("message_list", {"queue_name": "shared"},
                                         headers=headers)
        assert status == 200
        assert [m["body"] for m in body["messages"]] == ["hello"]
        # Signed for GET only: posting is refused.
        status, body = guest.status_body("message_post", {
            "queue_name": "shared", "messages": [{"body": "x"}]}, headers=headers)
        assert (status, body) == (403, {"error": "Not authentified."})
        # Signed for another queue than the one named in the body.
        status, _ = guest.status_body("message_list", {"queue_name": "other"},
                                      headers=headers)
        assert status == 403
        # Not a message action.
        status, _ = guest.status_body("queue_list", {}, headers=headers)
        assert status == 403


@pytest.mark.parametrize("change", ["forged", "expired", "project", "comma-methods"])
def test_refused_signed_requests(secured: WSGatewayService, project: str, change: str) -> None:
    headers = _signed(project, "shared", ["GET"])
    if change == "forged":
        headers["URL-Signature"] = "f" * 64
    elif change == "expired":
        past = "2001-01-01T00:00:00"
        headers["URL-Expires"] = past
        headers["URL-Signature"] = signing.signature(KEY, headers["URL-Paths"], ["GET"],
                                                     project, past)
    elif change == "project":
        headers["X-Project-ID"] = "someone-else"
    elif change == "comma-methods":
        headers["URL-Methods"] = "GET"  # a list over the websocket, not a string
    with WSClient(ws_url(secured), project) as guest:
        status, body = guest.status_body("message_list", {"queue_name": "shared"},
                                         headers=headers)
        assert (status, body) == (403, {"error": "Not authentified."})

"""Websocket: idempotent posts with the ``idempotency_key`` body field of
``message_post`` (docs/api-extensions.md)."""

from __future__ import annotations

from herald.ws_gateway.service import WSGatewayService
from tests.ws.client import WSClient
from tests.ws.conftest import ws_url


def test_idempotency_key_returns_the_original_ids(gateway: WSGatewayService,
                                                 project: str) -> None:
    client = WSClient(ws_url(gateway), project, binary=True)
    other_gateway_client = WSClient(ws_url(gateway), project)
    try:
        body = {"queue_name": "idem", "messages": [{"body": "once"}],
                "idempotency_key": "job-7"}
        status, first = client.status_body("message_post", body)
        assert status == 201
        # A retry (here from another connection, in the other frame kind).
        assert other_gateway_client.status_body("message_post", body) == (201, first)
        status, listed = client.status_body("message_list",
                                            {"queue_name": "idem", "echo": True})
        assert [m["id"] for m in listed["messages"]] == first["message_ids"]
        status, new = client.status_body("message_post", {**body, "idempotency_key": "job-8"})
        assert status == 201 and new != first
        status, conflict = client.status_body("message_post", {
            **body, "messages": [{"body": "twice"}]})
        assert status == 409 and "already used" in conflict["exception"]
    finally:
        client.ws.close()
        other_gateway_client.ws.close()


def test_idempotency_key_validation(gateway: WSGatewayService, project: str) -> None:
    client = WSClient(ws_url(gateway), project)
    try:
        body = {"queue_name": "idem", "messages": [{"body": 1}]}
        assert client.status_body("message_post", {**body, "idempotency_key": 7}) == (
            400, {"error": "Schema validation failed."})
        status, reply = client.status_body("message_post", {**body, "idempotency_key": ""})
        assert status == 400 and "idempotency_key" in reply["exception"]
    finally:
        client.ws.close()

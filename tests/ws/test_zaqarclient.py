"""python-zaqarclient's websocket transport (ws://) against the gateway.

The client's ws transport sends ``authenticate`` first (which must be
answered even without an auth strategy, or it hangs), then one text frame
per request with the parameters in ``body``, and reads ``headers.status``
and ``body`` of one reply frame; error statuses raise with ``body.error``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from zaqarclient.transport import errors as zaqar_errors
from zaqarclient.transport import request as zaqar_request
from zaqarclient.transport.ws import WebsocketTransport

from tests.ws.conftest import ws_url


@pytest.fixture
def transport(project: str) -> Iterator[WebsocketTransport]:
    options = {"auth_opts": {"options": {"os_auth_token": "no-auth-here",
                                         "os_project_id": project}}}
    t = WebsocketTransport(options)
    yield t
    t.cleanup()


def send(transport: WebsocketTransport, endpoint: str, operation: str, **body):
    req = zaqar_request.Request(endpoint, operation,
                                content=json.dumps(body) if body else None)
    resp = transport.send(req)
    return resp.status_code, json.loads(resp.content)


def test_queue_message_claim_flow(transport: WebsocketTransport, gateway) -> None:
    endpoint = ws_url(gateway)
    assert send(transport, endpoint, "queue_create", queue_name="zq") == (
        201, "Queue zq created.")
    status, body = send(transport, endpoint, "message_post", queue_name="zq",
                        messages=[{"body": {"n": 1}, "ttl": 300}, {"body": "two"}])
    assert status == 201
    ids = body["message_ids"]
    status, body = send(transport, endpoint, "queue_get_stats", queue_name="zq")
    assert status == 200 and body["messages"]["total"] == 2
    assert body["messages"]["oldest"]["id"] == ids[0]
    assert (body["messages"]["oldest"]["body"], body["messages"]["newest"]["body"]) == (
        {"n": 1}, "two")
    status, body = send(transport, endpoint, "message_list", queue_name="zq", echo=True)
    assert status == 200
    assert [(m["id"], m["body"]) for m in body["messages"]] == [(ids[0], {"n": 1}),
                                                                (ids[1], "two")]
    status, claim = send(transport, endpoint, "claim_create", queue_name="zq", limit=1)
    assert status == 201 and [m["id"] for m in claim["messages"]] == [ids[0]]
    assert send(transport, endpoint, "message_delete", queue_name="zq", message_id=ids[0],
                claim_id=claim["claim_id"]) == (204, {})
    assert send(transport, endpoint, "message_delete", queue_name="zq",
                message_id=ids[1]) == (204, {})
    assert send(transport, endpoint, "message_list", queue_name="zq", echo=True,
                include_claimed=True) == (200, {"messages": []})
    assert send(transport, endpoint, "queue_list") == (200, {"queues": [{"name": "zq"}]})


def test_errors_raise_with_the_error_text(transport: WebsocketTransport, gateway) -> None:
    endpoint = ws_url(gateway)
    with pytest.raises(zaqar_errors.MalformedRequest) as info:
        send(transport, endpoint, "queue_glorify", queue_name="zq")
    assert "queue_glorify is not a valid action" in str(info.value)
    with pytest.raises(zaqar_errors.ResourceNotFound):
        send(transport, endpoint, "claim_get", queue_name="zq", claim_id="0" * 32)

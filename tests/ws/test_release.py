"""``message_release`` over the websocket (issue 23 §4, docs/release.md).

The rules are REST's (``herald.common.edge.messages``): the message leaves
its claim, is claimable again after ``delay`` seconds and not before (the
storage clock is moved, no sleeps), 403 when another live claim holds it,
404 for an unknown or expired claim, 400 for a delay out of range.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from herald.testing import clock as fake_clock
from herald.testing.clock import FakeClock

from .client import WSClient
from .conftest import ws_url


@pytest.fixture(params=["json", "msgpack"])
def client(request: pytest.FixtureRequest, gateway, project: str) -> Iterator[WSClient]:
    c = WSClient(ws_url(gateway), project, binary=request.param == "msgpack")
    yield c
    c.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return fake_clock.install(monkeypatch)


def post(client: WSClient, count: int) -> list[str]:
    status, body = client.status_body("message_post", {
        "queue_name": "q", "messages": [{"body": n, "ttl": 600} for n in range(count)]})
    assert status == 201, body
    return body["message_ids"]


def claim(client: WSClient, limit: int = 10) -> tuple[str | None, list[str]]:
    status, body = client.status_body("claim_create", {"queue_name": "q", "limit": limit,
                                                       "ttl": 60})
    return body["claim_id"], [m["id"] for m in body.get("messages", [])]


def release(client: WSClient, message_id: str, claim_id: str, **body) -> tuple[int, object]:
    return client.status_body("message_release", {
        "queue_name": "q", "message_id": message_id, "claim_id": claim_id, **body})


def test_release_with_a_delay(client: WSClient, clock: FakeClock) -> None:
    ids = post(client, 2)
    claim_id, claimed = claim(client)
    assert claimed == ids
    assert release(client, ids[1], claim_id, delay=10) == (204, {})
    status, got = client.status_body("claim_get", {"queue_name": "q", "claim_id": claim_id})
    assert status == 200 and [m["id"] for m in got["messages"]] == [ids[0]]
    clock.advance(9)
    assert claim(client) == (None, [])
    clock.advance(1)
    assert claim(client)[1] == [ids[1]]


def test_refusals(client: WSClient, clock: FakeClock) -> None:
    ids = post(client, 2)
    mine, _ = claim(client, limit=1)
    theirs, _ = claim(client, limit=1)
    status, body = release(client, ids[1], mine)
    assert status == 403 and "claimed by another claim" in body["exception"]
    assert release(client, uuid.uuid4().hex, mine)[0] == 404
    for delay in (-1, 901):
        status, body = release(client, ids[0], mine, delay=delay)
        assert status == 400 and "may not exceed 900 seconds" in body["exception"]
    assert release(client, ids[0], mine, delay="5") == (400, {"error":
                                                              "Schema validation failed."})
    assert client.status_body("message_release", {"queue_name": "q", "message_id": ids[0]}) \
        == (400, {"error": "Schema validation failed."})
    clock.advance(61)
    status, body = release(client, ids[1], theirs)
    assert status == 404 and f"Claim {theirs} does not exist" in body["exception"]

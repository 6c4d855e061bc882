"""Project isolation over the websocket gateway: another project's ids are useless.

Project A posts, claims and subscribes; project B, knowing every id, tries
every action on them. B must see nothing, and A's queue must be unchanged.
"""

from __future__ import annotations

import uuid
from typing import Any

from herald.ws_gateway.service import WSGatewayService
from tests.ws.client import WSClient
from tests.ws.conftest import ws_url

Q = "shared-name"


def _state(a: WSClient) -> dict[str, Any]:
    status, stats = a.status_body("queue_get_stats", {"queue_name": Q})
    assert status == 200, stats
    _, listed = a.status_body("message_list", {"queue_name": Q, "echo": True,
                                               "include_claimed": True})
    _, subs = a.status_body("subscription_list", {"queue_name": Q})
    return {"stats": {k: stats["messages"][k] for k in ("total", "claimed")},
            "ids": sorted(m["id"] for m in listed["messages"]),
            "subscriptions": sorted(s["id"] for s in subs["subscriptions"])}


def test_another_project_sees_nothing_and_changes_nothing(gateway: WSGatewayService) -> None:
    url = ws_url(gateway)
    with WSClient(url, f"a-{uuid.uuid4().hex[:8]}") as a, \
            WSClient(url, f"b-{uuid.uuid4().hex[:8]}", binary=True) as b:
        status, body = a.status_body("message_post", {"queue_name": Q, "messages": [
            {"body": {"n": n}, "ttl": 600} for n in range(4)]})
        assert status == 201, body
        ids = body["message_ids"]
        status, claim = a.status_body("claim_create", {"queue_name": Q, "limit": 2})
        assert status == 201, claim
        cid = claim["claim_id"]
        status, sub = a.status_body("subscription_create", {
            "queue_name": Q, "subscriber": "http://127.0.0.1:9/a"})
        assert status == 201, sub
        sid = sub["subscription_id"]
        before = _state(a)
        assert before["stats"] == {"total": 4, "claimed": 2}

        def b_call(action: str, **body: Any) -> tuple[int, Any]:
            return b.status_body(action, {"queue_name": Q, **body})

        _, queues = b.status_body("queue_list")
        assert Q not in [x["name"] for x in queues["queues"]]
        assert b_call("message_list", echo=True, include_claimed=True)[1]["messages"] == []
        assert b_call("message_get", message_id=ids[3])[0] == 404
        assert b_call("message_get_many", message_ids=ids)[1]["messages"] == []
        assert b_call("claim_get", claim_id=cid)[0] == 404
        assert b_call("claim_update", claim_id=cid, ttl=60)[0] == 404
        assert b_call("subscription_get", subscription_id=sid)[0] == 404
        assert b_call("subscription_list")[1]["subscriptions"] == []
        assert b_call("claim_create", limit=10)[0] == 204
        b_call("claim_delete", claim_id=cid)
        b_call("message_delete", message_id=ids[3])
        b_call("message_delete", message_id=ids[0], claim_id=cid)
        b_call("message_delete_many", message_ids=ids)
        assert b_call("message_delete_many", pop=5)[1].get("messages", []) == []
        b_call("subscription_delete", subscription_id=sid)
        b_call("queue_purge")
        b_call("queue_delete")

        assert _state(a) == before
        assert a.status_body("claim_get", {"queue_name": Q, "claim_id": cid})[0] == 200

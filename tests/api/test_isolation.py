"""Project isolation over REST: another project cannot touch a project's data, even with its ids.

Project A owns a queue with messages, a live claim and a subscription.
Project B, knowing every id (message, claim, subscription) and the queue
name, tries to read, list, claim, renew, release, delete, purge and drop
them. Every attempt must look like "nothing there" to B, and afterwards A's
data must be exactly as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Client, Stack


@pytest.fixture
def victim(stack: Stack) -> tuple[Client, dict[str, Any]]:
    a = Client(stack.base_url)
    assert a.put("/v2/queues/shared-name").status_code == 201
    ids = a.post_messages("shared-name", 4, ttl=600)
    claim_id, claimed = a.claim("shared-name", ttl=300, limit=2)
    created = a.post("/v2/queues/shared-name/subscriptions",
                     json_body={"subscriber": "http://127.0.0.1:9/a", "ttl": 3600})
    assert created.status_code == 201, created.text
    return a, {"ids": ids, "claim_id": claim_id, "claimed": [m["id"] for m in claimed],
               "subscription_id": created.json()["subscription_id"]}


def _state(a: Client) -> dict[str, Any]:
    stats = a.get("/v2/queues/shared-name/stats").json()["messages"]
    listed = a.get("/v2/queues/shared-name/messages?echo=true&include_claimed=true").json()
    subs = a.get("/v2/queues/shared-name/subscriptions").json()["subscriptions"]
    return {"total": stats["total"], "claimed": stats["claimed"],
            "ids": sorted(m["id"] for m in listed["messages"]),
            "subscriptions": sorted(s["id"] for s in subs),
            "metadata": a.get("/v2/queues/shared-name").json()}


def test_another_project_sees_nothing_and_changes_nothing(
        stack: Stack, victim: tuple[Client, dict[str, Any]]) -> None:
    a, known = victim
    before = _state(a)
    assert before["total"] == 4 and before["claimed"] == 2
    b = Client(stack.base_url)
    q = "/v2/queues/shared-name"
    mid, cid, sid = known["ids"][3], known["claim_id"], known["subscription_id"]
    claimed_mid = known["claimed"][0]

    # Reads: nothing there.
    assert "shared-name" not in [x["name"] for x in b.get("/v2/queues").json()["queues"]]
    assert b.get(f"{q}/stats").json()["messages"]["total"] == 0
    assert b.get(f"{q}/messages?echo=true&include_claimed=true").json()["messages"] == []
    assert b.get(f"{q}/messages/{mid}").status_code == 404
    assert b.get(f"{q}/messages?ids={','.join(known['ids'])}").status_code == 404
    assert b.get(f"{q}/claims/{cid}").status_code == 404
    assert b.get(f"{q}/subscriptions").json()["subscriptions"] == []
    assert b.get(f"{q}/subscriptions/{sid}").status_code == 404

    # Writes with A's ids: no effect on A.
    assert b.post(f"{q}/claims", json_body={"ttl": 60}).status_code == 204
    assert b.patch(f"{q}/claims/{cid}", json_body={"ttl": 60}).status_code == 404
    assert b.delete(f"{q}/claims/{cid}").status_code == 204
    assert b.delete(f"{q}/messages/{mid}").status_code == 204
    assert b.delete(f"{q}/messages/{claimed_mid}?claim_id={cid}").status_code in (204, 400)
    assert b.delete(f"{q}/messages?ids={','.join(known['ids'])}").status_code == 204
    assert b.delete(f"{q}/messages?pop=5").json().get("messages", []) == []
    assert b.patch(f"{q}/subscriptions/{sid}", json_body={"ttl": 120}).status_code == 404
    assert b.put(f"{q}/subscriptions/{sid}/confirm",
                 json_body={"confirmed": True}).status_code == 404
    assert b.delete(f"{q}/subscriptions/{sid}").status_code == 204
    assert b.post(f"{q}/purge", json_body={"resource_types": ["messages", "subscriptions"]}
                  ).status_code == 204
    assert b.delete(q).status_code == 204

    after = _state(a)
    assert after == before, (before, after)
    # A's claim is still A's: renewing it works, its messages are still held.
    assert a.patch(f"{q}/claims/{cid}", json_body={"ttl": 120}).status_code == 204
    assert a.get(f"{q}/claims/{cid}").json()["ttl"] == 120
    assert a.get(f"{q}/subscriptions/{sid}").json()["confirmed"] is False

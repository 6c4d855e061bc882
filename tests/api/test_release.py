"""Releasing one claimed message over REST (issue 23 §4, docs/release.md).

``POST /v2/queues/{q}/messages/{id}/release?claim_id=<claim>``, body
``{"delay": s}``: 204, the message leaves its claim, is claimable again
after the delay and not before (the storage clock is moved, no sleeps), and
its claim count stays counted, so ``_max_claim_count`` still dead-letters.
"""

from __future__ import annotations

import uuid

import pytest

from .conftest import assert_error


def path(message_id: str, claim_id: str | None, queue: str = "q") -> str:
    query = "" if claim_id is None else f"?claim_id={claim_id}"
    return f"/v2/queues/{queue}/messages/{message_id}/release{query}"


def test_release_with_a_delay(api, clock):
    ids = api.post_messages("q", 3, ttl=600)
    claim_id, claimed = api.claim("q", limit=2)
    assert [m["id"] for m in claimed] == ids[:2]
    resp = api.post(path(ids[0], claim_id), json_body={"delay": 30})
    assert resp.status_code == 204 and resp.content == b""
    claim = api.get(f"/v2/queues/q/claims/{claim_id}").json()
    assert [m["id"] for m in claim["messages"]] == [ids[1]]
    # Not before the delay ...
    assert [m["id"] for m in api.claim("q")[1]] == [ids[2]]
    clock.advance(29)
    assert api.post("/v2/queues/q/claims", json_body={"ttl": 60}).status_code == 204
    # ... and claimable once it is over.
    clock.advance(1)
    assert [m["id"] for m in api.claim("q")[1]] == [ids[0]]


def test_release_without_a_body_is_claimable_at_once(api):
    ids = api.post_messages("q", 1)
    claim_id, _ = api.claim("q")
    assert api.post(path(ids[0], claim_id)).status_code == 204
    assert [m["id"] for m in api.claim("q")[1]] == ids


def test_released_messages_still_dead_letter(api, clock):
    resp = api.put("/v2/queues/q", json_body={"_max_claim_count": 2,
                                              "_dead_letter_queue": "dlq"})
    assert resp.status_code == 201, resp.text
    ids = api.post_messages("q", 1)
    for _ in range(2):
        claim_id, _ = api.claim("q")
        assert api.post(path(ids[0], claim_id), json_body={"delay": 1}).status_code == 204
        clock.advance(1)
    assert api.post("/v2/queues/q/claims", json_body={"ttl": 60}).status_code == 204
    moved = api.get("/v2/queues/dlq/messages?echo=true").json()["messages"]
    assert [m["id"] for m in moved] == ids


@pytest.mark.parametrize("query, body, status, text", [
    (None, {"delay": 1}, 400, "needs the claim_id"),
    ("", {"delay": 1}, 400, "needs the claim_id"),
    ("ok", {"delay": -1}, 400, "may not exceed 900 seconds, and must be at least 0"),
    ("ok", {"delay": 901}, 400, "may not exceed 900 seconds"),
    ("ok", {"delay": "5"}, 400, 'The value of the "delay" field must be a int.'),
    ("ok", {"delay": True}, 400, 'The value of the "delay" field must be a int.'),
    ("ok", [5], 400, "Document type not supported."),
])
def test_validation(api, query, body, status, text):
    ids = api.post_messages("q", 1)
    claim_id, _ = api.claim("q")
    claim = claim_id if query == "ok" else query
    assert_error(api.post(path(ids[0], claim), json_body=body), status, description=text)
    # the message is still in its claim
    claim = api.get(f"/v2/queues/q/claims/{claim_id}").json()
    assert [m["id"] for m in claim["messages"]] == ids


def test_max_delay_follows_the_limit(api, stack):
    stack.override("max_message_delay", 10, group="limits")
    ids = api.post_messages("q", 1)
    claim_id, _ = api.claim("q")
    assert_error(api.post(path(ids[0], claim_id), json_body={"delay": 11}), 400,
                 description="may not exceed 10 seconds")
    assert api.post(path(ids[0], claim_id), json_body={"delay": 10}).status_code == 204


def test_wrong_or_expired_claims_are_403_or_404(api, clock):
    ids = api.post_messages("q", 2, ttl=600)
    mine, _ = api.claim("q", ttl=60, limit=1)
    theirs, _ = api.claim("q", ttl=60, limit=1)
    assert_error(api.post(path(ids[1], mine)), 403, "Unable to release",
                 "claimed by another claim")
    assert_error(api.post(path(ids[0], uuid.uuid4().hex)), 403, "Unable to release")
    assert_error(api.post(path(ids[0], "not-a-claim")), 404, "Not found")
    assert_error(api.post(path(uuid.uuid4().hex, mine)), 404, "Not found")
    assert_error(api.post(path(ids[0], mine, queue="other")), 404, "Not found")
    clock.advance(61)  # both claims expire
    assert_error(api.post(path(ids[0], mine)), 404, "Not found", f"Claim {mine} does not exist")
    assert_error(api.post(path(ids[1], theirs)), 404, "Not found")
    assert api.get(f"/v2/queues/q/messages/{ids[0]}", params={"claim_id": mine}).status_code \
        == 200


def test_only_post(api):
    ids = api.post_messages("q", 1)
    resp = api.get(path(ids[0], "x"))
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]

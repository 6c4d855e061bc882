"""Claim endpoints over real HTTP (rest-v2.md §5): create, get, renew, release."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.api.conftest import Client, FakeClock, Stack, assert_error

CLAIM_TTL = ("The TTL for a claim may not exceed 43200 seconds, and must be at least 60 "
             "seconds long.")
CLAIM_GRACE = ("The grace for a claim may not exceed 43200 seconds, and must be at least 60 "
               "seconds long.")
CLAIM_LIMIT = "Limit must be at least 1 and may not be greater than 20."


def test_create(api: Client) -> None:
    ids = api.post_messages("q", 3, ttl=3600)
    resp = api.post("/v2/queues/q/claims?limit=2", json_body={"ttl": 120, "grace": 60})
    assert resp.status_code == 201, resp.text
    location = resp.headers["Location"]
    assert location.startswith("/v2/queues/q/claims/")
    cid = location.rsplit("/", 1)[1]
    messages = resp.json()["messages"]
    assert list(resp.json()) == ["messages"]
    assert [m["id"] for m in messages] == ids[:2]
    for m in messages:
        assert set(m) == {"id", "href", "ttl", "age", "body"}
        assert m["href"] == f"/v2/queues/q/messages/{m['id']}?claim_id={cid}"
        # The client takes the claim id from the text after the last "=".
        assert m["href"].rsplit("=", 1)[1] == cid


def test_create_extends_short_lived_messages(api: Client) -> None:
    (short,) = api.post_messages("q", 1, ttl=60)
    (long,) = api.post_messages("q", 1, ttl=3600)
    _, messages = api.claim("q", ttl=300, grace=100)
    ttls = {m["id"]: m["ttl"] for m in messages}
    assert ttls == {short: 400, long: 3600}  # Quirk #7: claim ttl + grace


@pytest.mark.parametrize("body", [None, b"", {}, {"ttl": None, "grace": None},
                                  {"ttl": None}, {"grace": 60}])
def test_create_defaults(api: Client, body: object) -> None:
    api.post_messages("q", 12)
    if isinstance(body, bytes) or body is None:
        resp = api.post("/v2/queues/q/claims", data=body)
    else:
        resp = api.post("/v2/queues/q/claims", json_body=body)
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["messages"]) == 10  # default limit
    claim = api.get(resp.headers["Location"]).json()
    assert claim["ttl"] == 300


def test_nothing_to_claim_is_204(api: Client) -> None:
    resp = api.post("/v2/queues/never/claims", json_body={"ttl": 60})
    assert resp.status_code == 204 and resp.content == b""
    assert "Location" not in resp.headers
    api.post_messages("q", 1)
    api.claim("q")
    assert api.post("/v2/queues/q/claims").status_code == 204


def test_claims_are_not_echo_filtered(api: Client) -> None:
    api.post_messages("q", 1)
    assert api.post("/v2/queues/q/claims").status_code == 201


@pytest.mark.parametrize("query,body,title,description", [
    ("", b"[]", "Invalid request body", "Document type not supported."),
    ("", b'"fail"', "Invalid request body", "Request body could not be parsed."),
    ("", b"{", "Invalid request body", "Request body could not be parsed."),
    ("", b'{"ttl": "300"}', "Invalid request body",
     'The value of the "ttl" field must be a int.'),
    ("", b'{"grace": 1.5}', "Invalid request body",
     'The value of the "grace" field must be a int.'),
    ("", b'{"ttl": 59}', "Invalid API request", CLAIM_TTL),
    ("", b'{"ttl": 43201}', "Invalid API request", CLAIM_TTL),
    ("?limit=0", b"{}", "Invalid API request", CLAIM_LIMIT),
    ("?limit=21", b"{}", "Invalid API request", CLAIM_LIMIT),
    ("", b'{"grace": 59}', "Invalid API request", CLAIM_GRACE),
    ("", b'{"grace": 43201}', "Invalid API request", CLAIM_GRACE),
    # Spec order: ttl, then limit, then grace.
    ("?limit=0", b'{"ttl": 1, "grace": 1}', "Invalid API request", CLAIM_TTL),
    ("?limit=0", b'{"grace": 1}', "Invalid API request", CLAIM_LIMIT),
    ("?limit=abc", b"{}", "Invalid parameter", '"limit" parameter is invalid'),
])
def test_create_errors(api: Client, query: str, body: bytes, title: str,
                       description: str) -> None:
    api.post_messages("q", 1)
    resp = api.post(f"/v2/queues/q/claims{query}", data=body)
    assert_error(resp, 400, title, description)
    assert api.get("/v2/queues/q/stats").json()["messages"]["claimed"] == 0


def test_get(api: Client, clock: FakeClock) -> None:
    ids = api.post_messages("q", 3)
    cid, _ = api.claim("q", ttl=300, limit=2)
    clock.advance(57)
    resp = api.get(f"/v2/queues/q/claims/{cid}")
    assert resp.status_code == 200
    claim = resp.json()
    assert set(claim) == {"age", "ttl", "href", "messages"}
    assert (claim["age"], claim["ttl"]) == (57, 300)
    assert claim["href"] == f"/v2/queues/q/claims/{cid}"
    assert [m["id"] for m in claim["messages"]] == ids[:2]
    assert all(m["href"].endswith(f"?claim_id={cid}") for m in claim["messages"])


def test_get_not_found(api: Client, clock: FakeClock) -> None:
    ids = api.post_messages("q", 2)
    cid, _ = api.claim("q", ttl=60, limit=1)
    for queue, claim_id in (("q", uuid.uuid4().hex), ("q", "junk"), ("never", cid)):
        assert_error(api.get(f"/v2/queues/{queue}/claims/{claim_id}"), 404, "Not found",
                     f"Claim {claim_id} does not exist in queue {queue} for project "
                     f"{api.project}")
    # All its messages deleted → 404.
    api.delete(f"/v2/queues/q/messages/{ids[0]}?claim_id={cid}")
    assert_error(api.get(f"/v2/queues/q/claims/{cid}"), 404)
    # Expired → 404; released → 404.
    cid2, _ = api.claim("q", ttl=60)
    clock.advance(61)
    assert_error(api.get(f"/v2/queues/q/claims/{cid2}"), 404)
    cid3, _ = api.claim("q")
    api.delete(f"/v2/queues/q/claims/{cid3}")
    assert_error(api.get(f"/v2/queues/q/claims/{cid3}"), 404)


def test_renew(api: Client, clock: FakeClock) -> None:
    api.post_messages("q", 1, ttl=60)
    cid, _ = api.claim("q", ttl=60, grace=60)
    clock.advance(50)
    resp = api.patch(f"/v2/queues/q/claims/{cid}", json_body={"ttl": 200, "grace": 100})
    assert resp.status_code == 204 and resp.content == b""
    claim = api.get(f"/v2/queues/q/claims/{cid}").json()
    assert (claim["age"], claim["ttl"]) == (0, 200)
    assert claim["messages"][0]["ttl"] >= 300  # re-extended to claim ttl + grace
    clock.advance(150)  # beyond the first claim's expiry, within the renewed one
    assert api.get(f"/v2/queues/q/claims/{cid}").status_code == 200


def test_renew_resets_missing_values_to_defaults(api: Client) -> None:
    api.post_messages("q", 1)
    cid, _ = api.claim("q", ttl=1000)
    assert api.patch(f"/v2/queues/q/claims/{cid}", json_body={}).status_code == 204
    assert api.get(f"/v2/queues/q/claims/{cid}").json()["ttl"] == 300  # Quirk #5
    body = {"ttl": None, "grace": None}
    assert api.patch(f"/v2/queues/q/claims/{cid}", json_body=body).status_code == 204


@pytest.mark.parametrize("data,title,description", [
    (b"", "Invalid request body", "Request body can not be empty"),
    (b"{", "Invalid request body", "Request body could not be parsed."),
    (b"[1]", "Invalid request body", "Document type not supported."),
    (b'{"ttl": "x"}', "Invalid request body", 'The value of the "ttl" field must be a int.'),
    (b'{"ttl": 59}', "Invalid API request", CLAIM_TTL),
    (b'{"ttl": 43201}', "Invalid API request", CLAIM_TTL),
])
def test_renew_errors(api: Client, data: bytes, title: str, description: str) -> None:
    api.post_messages("q", 1)
    cid, _ = api.claim("q")
    assert_error(api.patch(f"/v2/queues/q/claims/{cid}", data=data), 400, title, description)


def test_renew_does_not_range_check_grace(api: Client) -> None:
    api.post_messages("q", 1)
    cid, _ = api.claim("q")
    resp = api.patch(f"/v2/queues/q/claims/{cid}", json_body={"ttl": 100, "grace": 1})
    assert resp.status_code == 204


def test_renew_dead_claim_is_404(api: Client, clock: FakeClock) -> None:
    api.post_messages("q", 1)
    for claim_id in (uuid.uuid4().hex, "junk"):
        resp = api.patch(f"/v2/queues/q/claims/{claim_id}", json_body={"ttl": 100})
        assert_error(resp, 404, "Not found")
    cid, _ = api.claim("q", ttl=60)
    clock.advance(61)
    assert_error(api.patch(f"/v2/queues/q/claims/{cid}", json_body={"ttl": 100}), 404)


def test_renew_validates_before_lookup(api: Client) -> None:
    resp = api.patch(f"/v2/queues/q/claims/{uuid.uuid4().hex}", data=json.dumps({"ttl": 1}))
    assert_error(resp, 400, "Invalid API request", CLAIM_TTL)


def test_release(api: Client) -> None:
    ids = api.post_messages("q", 2)
    cid, _ = api.claim("q")
    resp = api.delete(f"/v2/queues/q/claims/{cid}")
    assert resp.status_code == 204 and resp.content == b""
    listed = api.get("/v2/queues/q/messages?echo=true").json()["messages"]
    assert [m["id"] for m in listed] == ids
    assert all("claim_id" not in m["href"] for m in listed)
    _, again = api.claim("q")
    assert [m["id"] for m in again] == ids


@pytest.mark.parametrize("claim_id", ["5c2a9f0e8b7d4e1f9a3c6b2d1e0f4a7b", "junk", "%FF"])
def test_release_unknown_is_204(api: Client, claim_id: str) -> None:
    assert api.delete(f"/v2/queues/q/claims/{claim_id}").status_code == 204
    assert api.delete(f"/v2/queues/never/claims/{claim_id}").status_code == 204


def test_dead_letter_queue(api: Client) -> None:
    api.put("/v2/queues/q", json_body={"_max_claim_count": 2, "_dead_letter_queue": "dlq"})
    (mid,) = api.post_messages("q", 1)
    for _ in range(2):
        resp = api.post("/v2/queues/q/claims", json_body={"ttl": 60, "grace": 60})
        assert resp.status_code == 201 and len(resp.json()["messages"]) == 1
        cid = resp.headers["Location"].rsplit("/", 1)[1]
        api.delete(f"/v2/queues/q/claims/{cid}")
    assert api.post("/v2/queues/q/claims").status_code == 204
    resp = api.get("/v2/queues/dlq/messages?echo=true&include_claimed=true")
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["messages"]] == [mid]


@pytest.mark.parametrize("dlq_flavor", ["on-b", None])
def test_a_dead_letter_reaches_its_dlq_on_another_pool(stack: Stack, api: Client,
                                                       tmp_path: Path,
                                                       dlq_flavor: str | None) -> None:
    """With pooling, the DLQ may live elsewhere than its source queue: on
    another pool, or (not created yet, here) in the main database. The dead
    letter is read and claimed where the DLQ lives (docs/dead-letter-redrive.md)."""
    stack.override("admin_mode", True)
    stack.override("pooling", True)
    admin = {"X-Roles": "admin"}
    for side in ("a", "b"):
        pool = f"{side}-{uuid.uuid4().hex[:8]}"
        assert api.put(f"/v2/pools/{pool}", headers=admin, json_body={
            "uri": f"sqlite:///{tmp_path}/{pool}.sqlite", "weight": 10}).status_code == 201
        assert api.put(f"/v2/flavors/on-{side}", headers=admin,
                       json_body={"pool_list": [pool]}).status_code == 201
    if dlq_flavor is not None:
        assert api.put("/v2/queues/q-dlq", json_body={"_flavor": dlq_flavor}).status_code == 201
    assert api.put("/v2/queues/q", json_body={
        "_flavor": "on-a", "_max_claim_count": 1, "_dead_letter_queue": "q-dlq"}
    ).status_code == 201
    (mid,) = api.post_messages("q", 1)
    first = api.post("/v2/queues/q/claims", json_body={"ttl": 60, "grace": 60})
    assert first.status_code == 201, first.text
    assert api.delete(first.headers["Location"]).status_code == 204
    assert api.post("/v2/queues/q/claims").status_code == 204  # dead-lettered instead

    listed = api.get("/v2/queues/q-dlq/messages?echo=true")
    assert listed.status_code == 200, listed.text
    assert [m["id"] for m in listed.json()["messages"]] == [mid]
    assert api.get(f"/v2/queues/q-dlq/messages/{mid}").json()["body"] == {"n": 0}
    claimed = api.post("/v2/queues/q-dlq/claims", json_body={"ttl": 60, "grace": 60})
    assert claimed.status_code == 201, claimed.text
    assert [m["id"] for m in claimed.json()["messages"]] == [mid]
    assert api.get("/v2/queues/q/stats").json()["messages"]["total"] == 0

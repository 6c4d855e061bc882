"""Contract: messages (semantics.md §3, §6, §11; rest-v2.md §4) on every backend."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from herald.common import errors

from .conftest import make_ctxt


def post(endpoint, ctxt, bodies, queue="q", ttl=300, **extra):
    return endpoint.message_post(ctxt, queue=queue,
                                 messages=[{"body": b, "ttl": ttl, **extra} for b in bodies],
                                 body_size=100)


def listing(endpoint, ctxt, queue="q", marker=None, limit=10, echo=True,
            include_claimed=False, include_delayed=False):
    return endpoint.message_list(ctxt, queue=queue, marker=marker, limit=limit, echo=echo,
                                 include_claimed=include_claimed,
                                 include_delayed=include_delayed)


BODIES = [None, 0, 1.5, "text", [1, "two", None], {"event": "x", "nested": {"a": [1]}},
          True, {"bin": b"\x00\xffraw"}]


TRICKY_BODIES = ["ünïcødé ✓", "😀 astral", 'quotes " and \\ backslashes', "tab\tnew\nline\u0001",
                 {"k\u00e9y": ["\u2028", "€"]}, "\\u0000 looks like an escape", 2**62, -1e-300]


@pytest.mark.parametrize("coalesced", [False, True], ids=["lone", "batch"])
def test_bodies_round_trip_exactly_into_an_existing_queue(endpoint, ctxt, coalesced):
    """An existing queue takes the posts' lock-check-insert path, which ships
    the rows as one JSON document on PostgreSQL: every body, and every
    character, comes back as posted."""
    from herald.common.rpc.coalescer import op_to_wire

    endpoint.queue_create(ctxt, queue="q", metadata=None)
    post(endpoint, ctxt, ["warm-up"])  # the worker now knows the queue's metadata
    if coalesced:
        replies = endpoint.batch(make_ctxt(""), ops=[
            op_to_wire(ctxt, "message_post", {"queue": "q", "body_size": 100,
                                              "messages": [{"body": body, "ttl": 300}]})
            for body in TRICKY_BODIES])
        ids = [i for reply in replies for i in reply["result"]]
    else:
        ids = post(endpoint, ctxt, TRICKY_BODIES)
    page = listing(endpoint, ctxt, limit=20)
    assert [m["id"] for m in page["messages"]][1:] == ids
    assert [m["body"] for m in page["messages"]][1:] == TRICKY_BODIES


def test_post_creates_queue_and_round_trips_bodies(endpoint, ctxt):
    ids = post(endpoint, ctxt, BODIES)
    assert len(ids) == len(set(ids)) == len(BODIES)
    assert endpoint.queue_get_metadata(ctxt, queue="q") == {}
    page = listing(endpoint, ctxt)
    assert [m["id"] for m in page["messages"]] == ids
    assert [m["body"] for m in page["messages"]] == BODIES
    one = endpoint.message_get(ctxt, queue="q", message_id=ids[0])
    assert set(one) == {"id", "body", "ttl", "age", "claim_id", "claim_count", "checksum",
                        "created"}
    assert one["body"] is None and one["ttl"] == 300 and one["claim_id"] is None
    assert one["checksum"] is None and one["claim_count"] == 0


def test_default_ttl_from_config_and_queue(endpoint, ctxt):
    ids = endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": None}],
                                body_size=1)
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["ttl"] == 3600
    endpoint.queue_create(ctxt, queue="q2", metadata={"_default_message_ttl": 120})
    ids = endpoint.message_post(ctxt, queue="q2", messages=[{"body": 1, "ttl": None},
                                                            {"body": 2, "ttl": 70}],
                                body_size=1)
    assert [m["ttl"] for m in endpoint.message_get_many(ctxt, queue="q2",
                                                        message_ids=ids)] == [120, 70]


def test_post_size_cap_of_the_queue(endpoint, ctxt):
    endpoint.queue_create(ctxt, queue="q", metadata={"_max_messages_post_size": 100})
    endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 60}], body_size=100)
    with pytest.raises(errors.BadRequest) as info:
        endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 60}],
                              body_size=101)
    assert info.value.description.startswith(
        "Message collection size is too large. The max size for current queue is 100.")
    with pytest.raises(errors.BadRequest) as info:
        endpoint.message_post(ctxt, queue="other", messages=[{"body": 1, "ttl": 60}],
                              body_size=262145)
    assert info.value.description == "Message collection size is too large. Max size 262144"
    assert endpoint.queue_stats(ctxt, queue="q")["total"] == 1


def test_list_pagination_in_posting_order(endpoint, ctxt):
    ids = post(endpoint, ctxt, range(10))
    post(endpoint, ctxt, range(3), queue="other")  # interleaved positions elsewhere
    ids += post(endpoint, ctxt, range(10, 12))
    seen, marker, sizes = [], None, []
    while True:
        page = listing(endpoint, ctxt, marker=marker, limit=3)
        if not page["messages"]:
            assert page["marker"] is None
            break
        sizes.append(len(page["messages"]))
        seen += [m["id"] for m in page["messages"]]
        marker = page["marker"]
        assert isinstance(marker, str)
    assert sizes == [3, 3, 3, 3]
    assert seen == ids


@pytest.mark.parametrize("marker", ["abc", "-1", "1.5", "  ", "9" * 40, "١٢"])
def test_uninterpretable_marker_gives_empty_page(endpoint, ctxt, marker):
    post(endpoint, ctxt, [1, 2])
    assert listing(endpoint, ctxt, marker=marker) == {"messages": [], "marker": None}


def test_missing_queue_lists_empty(endpoint, ctxt):
    assert listing(endpoint, ctxt, queue="nope") == {"messages": [], "marker": None}


def test_echo_compares_client_ids_as_uuids(endpoint):
    client = uuid.uuid4()
    dashed, undashed = make_ctxt(client_id=str(client)), make_ctxt(client_id=client.hex)
    other = make_ctxt(client_id=str(uuid.uuid4()))
    post(endpoint, dashed, ["mine"])
    assert listing(endpoint, undashed, echo=False)["messages"] == []
    assert listing(endpoint, dashed, echo=False)["messages"] == []
    assert len(listing(endpoint, undashed, echo=True)["messages"]) == 1
    assert len(listing(endpoint, other, echo=False)["messages"]) == 1
    # Non-UUID client ids (client_id_uuid_safe=off) compare as strings.
    plain = make_ctxt(client_id="not-a-uuid-client")
    post(endpoint, plain, ["plain"], queue="q2")
    assert listing(endpoint, plain, queue="q2", echo=False)["messages"] == []
    assert len(listing(endpoint, other, queue="q2", echo=False)["messages"]) == 1


def test_include_claimed_facts(endpoint):
    poster, stranger = make_ctxt(), make_ctxt()
    post(endpoint, poster, range(3))
    endpoint.claim_create(poster, queue="q", ttl=60, grace=60, limit=10)
    # semantics.md §3.3 test facts.
    assert listing(endpoint, poster, echo=True)["messages"] == []
    assert listing(endpoint, poster, echo=False)["messages"] == []
    assert listing(endpoint, poster, echo=False, include_claimed=True)["messages"] == []
    assert len(listing(endpoint, stranger, echo=False, include_claimed=True)["messages"]) == 3
    claimed = listing(endpoint, poster, echo=True, include_claimed=True)["messages"]
    assert len(claimed) == 3 and all(m["claim_id"] for m in claimed)


def test_expiry_is_immediate(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, ["short"], ttl=60) + post(endpoint, ctxt, ["long"], ttl=120)
    clock.advance(59)
    assert len(listing(endpoint, ctxt)["messages"]) == 2
    clock.advance(1)
    assert [m["body"] for m in listing(endpoint, ctxt)["messages"]] == ["long"]
    with pytest.raises(errors.MessageDoesNotExist):
        endpoint.message_get(ctxt, queue="q", message_id=ids[0])
    assert [m["id"] for m in endpoint.message_get_many(ctxt, queue="q", message_ids=ids)] == \
        [ids[1]]
    assert [m["body"] for m in endpoint.message_pop(ctxt, queue="q", limit=5)] == ["long"]
    assert endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=5)["claim_id"] is None


def test_age(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, [1])
    clock.advance(42.7)
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["age"] == 42


def test_delay_only_on_delaying_queues(endpoint, ctxt, clock):
    # Quirk 4: a per-message delay on a queue without a default delay is ignored.
    post(endpoint, ctxt, ["now"], delay=300)
    assert len(listing(endpoint, ctxt)["messages"]) == 1
    endpoint.queue_create(ctxt, queue="slow", metadata={"_default_message_delay": 30})
    ids = endpoint.message_post(ctxt, queue="slow", body_size=1, messages=[
        {"body": "default", "ttl": 300}, {"body": "zero", "ttl": 300, "delay": 0},
        {"body": "long", "ttl": 300, "delay": 100}])
    assert [m["body"] for m in listing(endpoint, ctxt, queue="slow")["messages"]] == ["zero"]
    assert len(listing(endpoint, ctxt, queue="slow", include_delayed=True)["messages"]) == 3
    assert endpoint.queue_stats(ctxt, queue="slow")["total"] == 3
    assert endpoint.message_get(ctxt, queue="slow", message_id=ids[2])["body"] == "long"
    claim = endpoint.claim_create(ctxt, queue="slow", ttl=300, grace=60, limit=10)
    assert [m["body"] for m in claim["messages"]] == ["zero"]
    clock.advance(30)
    assert [m["body"] for m in listing(endpoint, ctxt, queue="slow")["messages"]] == \
        ["default"]
    clock.advance(70)
    assert [m["body"] for m in endpoint.message_pop(ctxt, queue="slow", limit=5)] == \
        ["default", "long"]


def test_delay_validation(endpoint, ctxt):
    endpoint.queue_create(ctxt, queue="slow", metadata={"_default_message_delay": 30})
    with pytest.raises(errors.BadRequest) as info:
        endpoint.message_post(ctxt, queue="slow", body_size=1,
                              messages=[{"body": 1, "ttl": 60, "delay": 901}])
    assert "may not exceed 900 seconds" in info.value.description
    with pytest.raises(errors.InvalidBody) as info:
        endpoint.message_post(ctxt, queue="slow", body_size=1,
                              messages=[{"body": 1, "ttl": 60, "delay": "5"}])
    assert info.value.description == 'The value of the "delay" field must be a int.'
    # All-or-nothing: the good message before the bad one was not stored.
    with pytest.raises(errors.BadRequest):
        endpoint.message_post(ctxt, queue="slow", body_size=1, messages=[
            {"body": 1, "ttl": 60}, {"body": 2, "ttl": 60, "delay": -1}])
    assert endpoint.queue_stats(ctxt, queue="slow")["total"] == 0


def test_get_scoping_and_unknown_ids(endpoint, ctxt):
    ids = post(endpoint, ctxt, [1])
    for project, queue, mid in [("p1", "other", ids[0]), ("p2", "q", ids[0]),
                                ("p1", "q", "0" * 32), ("p1", "q", "../etc"),
                                ("p1", "q", "")]:
        with pytest.raises(errors.MessageDoesNotExist) as info:
            endpoint.message_get(make_ctxt(project), queue=queue, message_id=mid)
        assert info.value.description == (
            f"Message {mid} does not exist in queue {queue} for project {project}")
    assert endpoint.message_get_many(ctxt, queue="q", message_ids=["x", "0" * 32]) == []
    assert endpoint.message_get_many(ctxt, queue="nope", message_ids=ids) == []


def test_get_ignores_claims_and_echo(endpoint, ctxt):
    ids = post(endpoint, ctxt, [1, 2])
    claim = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)
    got = {m["id"]: m for m in endpoint.message_get_many(ctxt, queue="q", message_ids=ids)}
    assert got[ids[0]]["claim_id"] == claim["claim_id"]
    assert got[ids[1]]["claim_id"] is None


def test_delete_table(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, range(6))
    missing = uuid.uuid4().hex
    # malformed claim id → 400 even for a missing message
    for mid in (ids[0], missing):
        with pytest.raises(errors.ClaimMismatch) as info:
            endpoint.message_delete(ctxt, queue="q", message_id=mid, claim_id="bad claim")
        assert info.value.description == "The specified claim does not exist or has expired."
    # missing message, claim absent or well formed → no-op
    endpoint.message_delete(ctxt, queue="q", message_id=missing, claim_id=None)
    endpoint.message_delete(ctxt, queue="q", message_id=missing, claim_id=uuid.uuid4().hex)
    endpoint.message_delete(ctxt, queue="q", message_id="not-an-id", claim_id=None)
    # not claimed, no claim id → deleted
    endpoint.message_delete(ctxt, queue="q", message_id=ids[0], claim_id=None)
    # not claimed, claim id given → 400
    with pytest.raises(errors.ClaimMismatch) as info:
        endpoint.message_delete(ctxt, queue="q", message_id=ids[1], claim_id=uuid.uuid4().hex)
    assert info.value.description == ("A claim was specified, but the message is not "
                                      "currently claimed.")
    claim = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=2)["claim_id"]
    # claimed, no claim id → 403
    with pytest.raises(errors.MessageIsClaimed) as info:
        endpoint.message_delete(ctxt, queue="q", message_id=ids[1], claim_id=None)
    assert info.value.description == ("This message is claimed; it cannot be deleted "
                                      "without a valid claim ID.")
    # claimed, another claim id → 403
    with pytest.raises(errors.MessageIsClaimed):
        endpoint.message_delete(ctxt, queue="q", message_id=ids[1], claim_id=uuid.uuid4().hex)
    # matching claim → deleted
    endpoint.message_delete(ctxt, queue="q", message_id=ids[1], claim_id=claim)
    # matching claim that just expired, not re-claimed → still deleted
    clock.advance(61)
    endpoint.message_delete(ctxt, queue="q", message_id=ids[2], claim_id=claim)
    # released → not claimed → 400 with that claim id
    claim2 = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)["claim_id"]
    endpoint.claim_delete(ctxt, queue="q", claim_id=claim2)
    with pytest.raises(errors.ClaimMismatch):
        endpoint.message_delete(ctxt, queue="q", message_id=ids[3], claim_id=claim2)
    remaining = [m["id"] for m in listing(endpoint, ctxt)["messages"]]
    assert remaining == ids[3:]


def test_delete_many(endpoint, ctxt):
    ids = post(endpoint, ctxt, range(4))
    endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)
    # ignores claims, unknown and malformed ids; queue need not exist
    endpoint.message_delete_many(ctxt, queue="q", message_ids=[ids[0], ids[1], "zz",
                                                               uuid.uuid4().hex],
                                 claim_ids=None)
    endpoint.message_delete_many(ctxt, queue="nope", message_ids=ids, claim_ids=None)
    assert [m["id"] for m in endpoint.message_get_many(ctxt, queue="q", message_ids=ids)] == \
        ids[2:]


def test_delete_many_with_claim_ids(endpoint, ctxt):
    ids = post(endpoint, ctxt, range(4))
    claim = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=2)["claim_id"]
    with pytest.raises(errors.BadRequest):
        endpoint.message_delete_many(ctxt, queue="q", message_ids=[ids[2]], claim_ids=[claim])
    with pytest.raises(errors.BadRequest):
        endpoint.message_delete_many(ctxt, queue="q", message_ids=ids[:2],
                                     claim_ids=[claim, uuid.uuid4().hex])
    assert len(endpoint.message_get_many(ctxt, queue="q", message_ids=ids)) == 4
    endpoint.message_delete_many(ctxt, queue="q", message_ids=ids[:2], claim_ids=[claim])
    assert len(endpoint.message_get_many(ctxt, queue="q", message_ids=ids)) == 2


def test_pop(endpoint, ctxt):
    assert endpoint.message_pop(ctxt, queue="nope", limit=5) == []
    ids = post(endpoint, ctxt, range(6))
    endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=2)
    popped = endpoint.message_pop(ctxt, queue="q", limit=3)
    assert [m["id"] for m in popped] == ids[2:5]
    assert all(m["claim_id"] is None and m["claim_count"] == 0 for m in popped)
    assert [m["body"] for m in popped] == [2, 3, 4]
    assert [m["id"] for m in endpoint.message_pop(ctxt, queue="q", limit=20)] == [ids[5]]
    assert endpoint.queue_stats(ctxt, queue="q")["total"] == 2


def test_checksum(endpoint, ctxt, conf):
    ids = post(endpoint, ctxt, [{"a": 1}])
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["checksum"] is None
    conf.set_override("enable_checksum", True)
    body = {"key": "välue", "list": [1, 2]}
    ids = post(endpoint, ctxt, [body, None])
    first, second = endpoint.message_get_many(ctxt, queue="q", message_ids=ids)
    expected = "MD5:" + hashlib.md5(json.dumps(body).encode("utf-8")).hexdigest()
    assert first["checksum"] == expected
    assert second["checksum"] is None
    assert endpoint.message_pop(ctxt, queue="q", limit=20)[1]["checksum"] == expected

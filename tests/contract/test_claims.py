"""Contract: claims and dead-letter queues (semantics.md §5, §7) on every backend."""

from __future__ import annotations

import uuid

import pytest

from herald.common import errors


def post(endpoint, ctxt, bodies, queue="q", ttl=300):
    return endpoint.message_post(ctxt, queue=queue, body_size=1,
                                 messages=[{"body": b, "ttl": ttl} for b in bodies])


def claim(endpoint, ctxt, queue="q", ttl=60, grace=60, limit=10):
    return endpoint.claim_create(ctxt, queue=queue, ttl=ttl, grace=grace, limit=limit)


def test_nothing_to_claim(endpoint, ctxt):
    assert claim(endpoint, ctxt, queue="missing") == {"claim_id": None, "messages": []}
    endpoint.queue_create(ctxt, queue="q", metadata={})
    assert claim(endpoint, ctxt) == {"claim_id": None, "messages": []}
    post(endpoint, ctxt, [1])
    assert claim(endpoint, ctxt)["claim_id"]
    assert claim(endpoint, ctxt) == {"claim_id": None, "messages": []}


def test_create_takes_oldest_up_to_limit_including_own(endpoint, ctxt):
    ids = post(endpoint, ctxt, range(15))
    first = claim(endpoint, ctxt)  # default limit 10; no echo filtering
    assert [m["id"] for m in first["messages"]] == ids[:10]
    assert all(m["claim_id"] == first["claim_id"] for m in first["messages"])
    second = claim(endpoint, ctxt, limit=3)
    assert [m["id"] for m in second["messages"]] == ids[10:13]
    assert first["claim_id"] != second["claim_id"]


def test_get(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, range(3))
    cid = claim(endpoint, ctxt, ttl=100, limit=2)["claim_id"]
    clock.advance(7)
    got = endpoint.claim_get(ctxt, queue="q", claim_id=cid)
    assert (got["id"], got["ttl"], got["age"]) == (cid, 100, 7)
    assert [m["id"] for m in got["messages"]] == ids[:2]
    for queue, bad in [("q", uuid.uuid4().hex), ("q", "nonsense"), ("other", cid)]:
        with pytest.raises(errors.ClaimDoesNotExist) as info:
            endpoint.claim_get(ctxt, queue=queue, claim_id=bad)
        assert info.value.description == (
            f"Claim {bad} does not exist in queue {queue} for project p1")


def test_claim_without_messages_does_not_exist(endpoint, ctxt):
    ids = post(endpoint, ctxt, range(2))
    cid = claim(endpoint, ctxt)["claim_id"]
    endpoint.message_delete_many(ctxt, queue="q", message_ids=ids, claim_ids=None)
    with pytest.raises(errors.ClaimDoesNotExist):
        endpoint.claim_get(ctxt, queue="q", claim_id=cid)
    with pytest.raises(errors.ClaimDoesNotExist):
        endpoint.claim_update(ctxt, queue="q", claim_id=cid, ttl=60, grace=60)


def test_expiry_releases(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, range(2), ttl=3600)
    cid = claim(endpoint, ctxt, ttl=60)["claim_id"]
    clock.advance(60)
    with pytest.raises(errors.ClaimDoesNotExist):
        endpoint.claim_get(ctxt, queue="q", claim_id=cid)
    with pytest.raises(errors.ClaimDoesNotExist):
        endpoint.claim_update(ctxt, queue="q", claim_id=cid, ttl=60, grace=60)
    assert [m["claim_id"] for m in endpoint.message_get_many(
        ctxt, queue="q", message_ids=ids)] == [None, None]
    assert len(endpoint.message_list(ctxt, queue="q", marker=None, limit=10, echo=True,
                                     include_claimed=False,
                                     include_delayed=False)["messages"]) == 2
    again = claim(endpoint, ctxt)
    assert [m["id"] for m in again["messages"]] == ids


def test_claim_extends_short_lived_messages(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, ["short"], ttl=60) + post(endpoint, ctxt, ["long"], ttl=1000)
    result = claim(endpoint, ctxt, ttl=120, grace=30)
    ttls = {m["id"]: m["ttl"] for m in result["messages"]}
    # Quirk 7: the extended message reports claim ttl + grace; the other is untouched.
    assert ttls == {ids[0]: 150, ids[1]: 1000}
    clock.advance(149)
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["ttl"] == 150
    clock.advance(1)
    with pytest.raises(errors.MessageDoesNotExist):
        endpoint.message_get(ctxt, queue="q", message_id=ids[0])


def test_update_renews_and_reextends(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, [1], ttl=60)
    cid = claim(endpoint, ctxt, ttl=60, grace=60)["claim_id"]
    clock.advance(50)
    endpoint.claim_update(ctxt, queue="q", claim_id=cid, ttl=300, grace=100)
    got = endpoint.claim_get(ctxt, queue="q", claim_id=cid)
    assert (got["ttl"], got["age"]) == (300, 0)
    assert got["messages"][0]["ttl"] == 400
    clock.advance(299)
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["claim_id"] == cid
    assert claim(endpoint, ctxt)["claim_id"] is None
    clock.advance(1)
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["claim_id"] is None
    for bad in ("nonsense", uuid.uuid4().hex):
        with pytest.raises(errors.ClaimDoesNotExist):
            endpoint.claim_update(ctxt, queue="q", claim_id=bad, ttl=60, grace=60)


def test_update_with_huge_grace_is_clamped(endpoint, ctxt, clock):
    # Only a renewal's ttl is range-checked by the API; any integer grace
    # must still be storable on every backend.
    post(endpoint, ctxt, [1], ttl=60)
    cid = claim(endpoint, ctxt, ttl=60, grace=60)["claim_id"]
    endpoint.claim_update(ctxt, queue="q", claim_id=cid, ttl=300, grace=2**63 - 1)
    got = endpoint.claim_get(ctxt, queue="q", claim_id=cid)
    assert got["messages"][0]["ttl"] == 300 + 43200


def test_release(endpoint, ctxt):
    ids = post(endpoint, ctxt, range(3))
    cid = claim(endpoint, ctxt, limit=2)["claim_id"]
    endpoint.claim_delete(ctxt, queue="q", claim_id=cid)
    endpoint.claim_delete(ctxt, queue="q", claim_id=cid)  # unknown now: no-op
    endpoint.claim_delete(ctxt, queue="q", claim_id="nonsense")
    with pytest.raises(errors.ClaimDoesNotExist):
        endpoint.claim_get(ctxt, queue="q", claim_id=cid)
    assert [m["id"] for m in claim(endpoint, ctxt)["messages"]] == ids


def test_counter_only_on_dlq_queues(endpoint, ctxt):
    post(endpoint, ctxt, [1])
    cid = claim(endpoint, ctxt)["claim_id"]
    endpoint.claim_delete(ctxt, queue="q", claim_id=cid)
    assert claim(endpoint, ctxt)["messages"][0]["claim_count"] == 0


def test_dead_letter_queue_tempest_scenario(endpoint, ctxt, clock):
    endpoint.queue_create(ctxt, queue="q", metadata={
        "_max_claim_count": 2, "_dead_letter_queue": "dlq",
        "_dead_letter_queue_messages_ttl": 7799})
    ids = post(endpoint, ctxt, ["poison"], ttl=300)
    for expected_count in (1, 2):
        result = claim(endpoint, ctxt, ttl=60, grace=60, limit=1)
        assert [m["id"] for m in result["messages"]] == ids
        assert result["messages"][0]["claim_count"] == expected_count
        clock.advance(61)  # the claim expires naturally
    assert endpoint.queue_get_metadata(ctxt, queue="dlq") is None
    assert claim(endpoint, ctxt, ttl=60, grace=60, limit=1) == {"claim_id": None,
                                                                 "messages": []}
    assert endpoint.queue_get_metadata(ctxt, queue="dlq") == {}  # created lazily
    assert endpoint.queue_stats(ctxt, queue="q")["total"] == 0
    moved = endpoint.message_list(ctxt, queue="dlq", marker=None, limit=10, echo=True,
                                  include_claimed=False, include_delayed=False)["messages"]
    assert [(m["id"], m["body"], m["ttl"], m["claim_id"]) for m in moved] == \
        [(ids[0], "poison", 7799, None)]
    clock.advance(7798)
    assert endpoint.message_get(ctxt, queue="dlq", message_id=ids[0])["body"] == "poison"
    assert claim(endpoint, ctxt, queue="dlq")["messages"][0]["id"] == ids[0]


def test_dead_letter_move_keeps_lifetime_without_dlq_ttl(endpoint, ctxt, clock):
    endpoint.queue_create(ctxt, queue="q", metadata={"_max_claim_count": 1,
                                                     "_dead_letter_queue": "dlq"})
    post(endpoint, ctxt, ["a"], ttl=1000)
    first = post(endpoint, ctxt, ["b"], ttl=1000)
    # "b" will be claimed once and then moved; "c" posted later stays claimable.
    cid = claim(endpoint, ctxt, limit=2)["claim_id"]
    endpoint.claim_delete(ctxt, queue="q", claim_id=cid)
    fresh = post(endpoint, ctxt, ["c"], ttl=1000)
    post(endpoint, ctxt, ["d"], queue="dlq")  # the DLQ already has a message
    result = claim(endpoint, ctxt, limit=10)
    assert [m["id"] for m in result["messages"]] == fresh
    moved = endpoint.message_list(ctxt, queue="dlq", marker=None, limit=10, echo=True,
                                  include_claimed=False, include_delayed=False)["messages"]
    # moved messages go to the end of the DLQ (a reader paging it sees them)
    assert [m["body"] for m in moved] == ["d", "a", "b"]
    assert moved[2]["id"] == first[0] and moved[2]["ttl"] == 1000


def test_garbage_collection(endpoint, database, conf, ctxt, clock):
    from herald.storage.claims import ClaimController

    gc = ClaimController(database, conf)
    post(endpoint, ctxt, ["old"], ttl=60)
    post(endpoint, ctxt, ["new"], ttl=600)
    post(endpoint, ctxt, ["other"], ttl=60, queue="q2")
    claim(endpoint, ctxt, queue="q2", ttl=60, grace=60)
    assert gc.expired_queues() == []
    clock.advance(200)
    assert gc.expired_queues() == [("p1", "q"), ("p1", "q2")]
    assert gc.collect_garbage("p1", "q") == 1
    assert gc.collect_garbage("p1", "q2") == 1
    assert gc.expired_queues() == []
    assert endpoint.queue_stats(ctxt, queue="q")["total"] == 1


# -- claims registered with a websocket connection (StorageAPI 1.5) -----------

GW = {"gateway_id": "gw-1", "connection_id": "c-1"}


def _claimable(endpoint, ctxt, queue="q"):
    got = claim(endpoint, ctxt, queue=queue)
    if got["claim_id"]:
        endpoint.claim_delete(ctxt, queue=queue, claim_id=got["claim_id"])
    return sorted(m["id"] for m in got["messages"])


def test_release_connection_releases_only_that_connections_claims(endpoint, ctxt, clock):
    from tests.contract.conftest import make_ctxt

    other_project = make_ctxt("p2")
    ids = post(endpoint, ctxt, range(4))
    registered = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1,
                                       connection=GW)
    renewed = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1,
                                    connection=GW)
    elsewhere = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1,
                                      connection={**GW, "connection_id": "c-2"})
    plain = claim(endpoint, ctxt, limit=1)
    (theirs,) = post(endpoint, other_project, ["theirs"])
    endpoint.claim_create(other_project, queue="q", ttl=60, grace=60, limit=1, connection=GW)
    # A renewal without a connection drops the registration.
    endpoint.claim_update(ctxt, queue="q", claim_id=renewed["claim_id"], ttl=90, grace=60)
    # Another queue's and another project's claims stay: one call, one queue.
    assert endpoint.claim_release_connection(ctxt, queue="other", **GW) == 0
    assert endpoint.claim_release_connection(ctxt, queue="q", **GW) == 1
    assert _claimable(endpoint, ctxt) == [registered["messages"][0]["id"]] == [ids[0]]
    for still in (renewed, elsewhere, plain):
        assert endpoint.claim_get(ctxt, queue="q", claim_id=still["claim_id"])
    assert _claimable(endpoint, other_project) == []
    assert endpoint.claim_release_connection(other_project, queue="q", **GW) == 1
    assert _claimable(endpoint, other_project) == [theirs]
    # Released once: nothing left to release.
    assert endpoint.claim_release_connection(ctxt, queue="q", **GW) == 0


def test_migration_0007_adds_and_removes_the_registration(database_url):
    import sqlalchemy as sa

    from herald.storage import migrations
    from herald.storage.engine import make_engine
    from tests.contract.test_pools import migrations_downgrade

    migrations.upgrade(database_url, "0006")
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO claims (id, project, queue, ttl, grace, updated, "
                                 "expires) VALUES ('c1', 'p', 'q', 60, 60, 1.0, 61.0)"))
        migrations.upgrade(database_url)
        with engine.begin() as conn:
            assert conn.execute(sa.text(
                "SELECT id, gateway_id, connection_id FROM claims")).all() == [("c1", None, None)]
        migrations_downgrade(database_url, "0006")
        with engine.begin() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("claims")}
            assert "gateway_id" not in columns and "connection_id" not in columns
            assert conn.execute(sa.text("SELECT id FROM claims")).all() == [("c1",)]
        migrations.upgrade(database_url)
    finally:
        engine.dispose()


# -- releasing one claimed message (issue 23 §4, docs/release.md) ------------------


def release(endpoint, ctxt, message_id, claim_id, delay=0, queue="q"):
    return endpoint.message_release(ctxt, queue=queue, message_id=message_id,
                                    claim_id=claim_id, delay=delay)


def test_release_one_message_with_a_delay(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, ["a", "b", "c"])
    cid = claim(endpoint, ctxt, limit=2)["claim_id"]
    release(endpoint, ctxt, ids[0], cid, delay=30)
    # Out of the claim at once; the claim keeps its other message.
    assert [m["id"] for m in endpoint.claim_get(ctxt, queue="q", claim_id=cid)["messages"]] \
        == [ids[1]]
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["claim_id"] is None
    # Not claimable before the delay ...
    assert [m["id"] for m in claim(endpoint, ctxt)["messages"]] == [ids[2]]
    clock.advance(29.5)
    assert claim(endpoint, ctxt)["claim_id"] is None
    # ... and claimable once it is over.
    clock.advance(0.5)
    assert [m["id"] for m in claim(endpoint, ctxt)["messages"]] == [ids[0]]


def test_release_without_delay_is_claimable_at_once(endpoint, ctxt):
    ids = post(endpoint, ctxt, ["a", "b"])
    cid = claim(endpoint, ctxt)["claim_id"]
    release(endpoint, ctxt, ids[1], cid)
    assert [m["id"] for m in claim(endpoint, ctxt)["messages"]] == [ids[1]]
    assert stats_claimed(endpoint, ctxt) == 2


def stats_claimed(endpoint, ctxt):
    return endpoint.queue_stats(ctxt, queue="q")["claimed"]


def test_release_refusals(endpoint, ctxt, clock):
    ids = post(endpoint, ctxt, ["a", "b"])
    mine = claim(endpoint, ctxt, limit=1)["claim_id"]
    theirs = claim(endpoint, ctxt, limit=1)["claim_id"]
    # another live claim holds the message (as for delete): 403
    for claim_id in (mine, uuid.uuid4().hex):
        with pytest.raises(errors.ReleaseRefused):
            release(endpoint, ctxt, ids[1], claim_id)
    # a malformed claim id; no such message here (other id, queue or project): 404
    with pytest.raises(errors.ClaimDoesNotExist):
        release(endpoint, ctxt, ids[0], "nonsense")
    for queue, message_id, ctx in (("q", uuid.uuid4().hex, ctxt), ("other", ids[0], ctxt),
                                   ("q", ids[0], _other_project(ctxt))):
        with pytest.raises(errors.MessageDoesNotExist):
            release(endpoint, ctx, message_id, mine, queue=queue)
    # nothing was changed by the refusals
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["claim_id"] == mine
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[1])["claim_id"] == theirs
    # an expired claim is gone: 404, as for a claim read
    clock.advance(61)
    with pytest.raises(errors.ClaimDoesNotExist):
        release(endpoint, ctxt, ids[0], mine)
    # a released message is no longer the claim's: a second release is 404
    fresh = claim(endpoint, ctxt, limit=1)
    release(endpoint, ctxt, fresh["messages"][0]["id"], fresh["claim_id"])
    with pytest.raises(errors.ClaimDoesNotExist):
        release(endpoint, ctxt, fresh["messages"][0]["id"], fresh["claim_id"])


def _other_project(ctxt):
    from .conftest import make_ctxt

    return make_ctxt("p2")


def test_released_messages_keep_their_claim_count_and_dead_letter(endpoint, ctxt, clock):
    endpoint.queue_create(ctxt, queue="q", metadata={"_max_claim_count": 2,
                                                     "_dead_letter_queue": "dlq"})
    ids = post(endpoint, ctxt, ["poison"])
    for expected_count in (1, 2):
        result = claim(endpoint, ctxt, limit=1)
        assert result["messages"][0]["claim_count"] == expected_count
        release(endpoint, ctxt, ids[0], result["claim_id"], delay=5)
        assert endpoint.message_get(ctxt, queue="q",
                                    message_id=ids[0])["claim_count"] == expected_count
        clock.advance(5)
    # Claimed twice and released twice: the next claim dead-letters it.
    assert claim(endpoint, ctxt, limit=1)["claim_id"] is None
    moved = endpoint.message_list(ctxt, queue="dlq", marker=None, limit=10, echo=True,
                                  include_claimed=False, include_delayed=False)["messages"]
    assert [(m["id"], m["body"]) for m in moved] == [(ids[0], "poison")]


def test_a_released_grouped_message_keeps_its_place_in_the_group(endpoint, ctxt, clock):
    """Issue 23 §2 with §4: the released head of a group, delayed, still
    comes first; the rest of its group waits for it, other groups do not."""
    ids = endpoint.message_post(ctxt, queue="q", body_size=1, messages=[
        {"body": body, "ttl": 600, "group": group}
        for body, group in (("g1-a", "g1"), ("g1-b", "g1"), ("g2-a", "g2"))])
    first = claim(endpoint, ctxt, limit=1)
    assert [m["id"] for m in first["messages"]] == ids[:1]
    release(endpoint, ctxt, ids[0], first["claim_id"], delay=10)
    assert [m["body"] for m in claim(endpoint, ctxt)["messages"]] == ["g2-a"]
    clock.advance(10)
    assert [m["body"] for m in claim(endpoint, ctxt)["messages"]] == ["g1-a", "g1-b"]

"""Contract: ordered message groups (issue 23, feature 2) on every backend.

A group's messages are claimed in post order, one claim may take several
consecutive ones, and while a message of a group is held by a live claim no
other claim returns a message of that group. Messages without a group are
claimed as on any queue.
"""

from __future__ import annotations

import collections
import random
import threading

from .conftest import make_ctxt
from .test_concurrency import _run_all


def post(endpoint, ctxt, items, queue="q"):
    """``items``: (body, group or None) pairs; returns the ids."""
    return endpoint.message_post(ctxt, queue=queue, body_size=1, messages=[
        {"body": body, "ttl": 600, **({"group": group} if group else {})}
        for body, group in items])


def claim(endpoint, ctxt, limit=10, queue="q", ttl=60):
    return endpoint.claim_create(ctxt, queue=queue, ttl=ttl, grace=60, limit=limit)


def bodies(result):
    return [m["body"] for m in result["messages"]]


def test_the_issue_example(endpoint, ctxt):
    ids = post(endpoint, ctxt, [("g1-a", "g1"), ("g1-b", "g1"), ("g2-a", "g2")])
    first = claim(endpoint, ctxt, limit=1)
    assert bodies(first) == ["g1-a"]
    assert first["messages"][0]["group"] == "g1"
    assert bodies(claim(endpoint, ctxt, limit=10)) == ["g2-a"]
    assert claim(endpoint, ctxt) == {"claim_id": None, "messages": []}
    endpoint.message_delete(ctxt, queue="q", message_id=ids[0], claim_id=first["claim_id"])
    assert bodies(claim(endpoint, ctxt)) == ["g1-b"]


def test_one_claim_takes_consecutive_messages_of_a_group_in_post_order(endpoint, ctxt):
    post(endpoint, ctxt, [("a1", "a"), ("b1", "b"), ("a2", "a"), (None, None), ("a3", "a")])
    assert bodies(claim(endpoint, ctxt, limit=3)) == ["a1", "b1", "a2"]
    # a3 waits for a1 and a2; the ungrouped message is free.
    assert bodies(claim(endpoint, ctxt)) == [None]


def test_a_released_or_expired_claim_frees_its_group(endpoint, ctxt, clock):
    post(endpoint, ctxt, [("a1", "a"), ("a2", "a")])
    held = claim(endpoint, ctxt, limit=1)
    assert bodies(claim(endpoint, ctxt)) == []
    endpoint.claim_delete(ctxt, queue="q", claim_id=held["claim_id"])
    assert bodies(claim(endpoint, ctxt, limit=1, ttl=60)) == ["a1"]
    clock.advance(61)
    # The expired claim held a1 only: a1 comes back first, a2 with it.
    assert bodies(claim(endpoint, ctxt)) == ["a1", "a2"]


def test_listing_and_getting_show_the_group_and_only_on_grouped_messages(endpoint, ctxt):
    ids = post(endpoint, ctxt, [("x", "orders-42"), ("y", None)])
    listed = endpoint.message_list(ctxt, queue="q", marker=None, limit=10, echo=True,
                                   include_claimed=False, include_delayed=False)["messages"]
    assert [m.get("group") for m in listed] == ["orders-42", None]
    assert "group" not in listed[1]
    assert endpoint.message_get(ctxt, queue="q", message_id=ids[0])["group"] == "orders-42"


def test_ungrouped_queues_are_claimed_as_before(endpoint, ctxt, database):
    import sqlalchemy as sa

    from herald.storage.schema import queues
    ids = post(endpoint, ctxt, [(i, None) for i in range(5)])
    assert [m["id"] for m in claim(endpoint, ctxt, limit=2)["messages"]] == ids[:2]
    with database.engine.connect() as conn:
        assert conn.execute(sa.select(queues.c.grouped)).scalar_one() is False
    post(endpoint, ctxt, [("g", "g")])
    with database.engine.connect() as conn:
        assert conn.execute(sa.select(queues.c.grouped)).scalar_one() is True


def test_a_delayed_message_holds_back_the_rest_of_its_group(endpoint, ctxt, clock):
    endpoint.queue_create(ctxt, queue="q", metadata={"_default_message_delay": 30})
    endpoint.message_post(ctxt, queue="q", body_size=1, messages=[
        {"body": "a1", "ttl": 600, "group": "a", "delay": 30},
        {"body": "a2", "ttl": 600, "group": "a", "delay": 0},
        {"body": "b1", "ttl": 600, "group": "b", "delay": 0}])
    assert bodies(claim(endpoint, ctxt)) == ["b1"]
    clock.advance(30)
    assert bodies(claim(endpoint, ctxt)) == ["a1", "a2"]


def test_grouped_messages_dead_letter_with_their_group(endpoint, ctxt):
    endpoint.queue_create(ctxt, queue="q", metadata={"_max_claim_count": 1,
                                                     "_dead_letter_queue": "dlq"})
    post(endpoint, ctxt, [("a1", "a"), ("a2", "a")])
    first = claim(endpoint, ctxt, limit=1)
    endpoint.claim_delete(ctxt, queue="q", claim_id=first["claim_id"])
    # a1 was claimed once: it moves to the DLQ, a2 (next in its group) is claimed.
    assert bodies(claim(endpoint, ctxt)) == ["a2"]
    assert [(m["body"], m["group"]) for m in claim(endpoint, ctxt, queue="dlq")["messages"]] \
        == [("a1", "a")]


GROUPS, PER_GROUP = 8, 12


def test_concurrent_claimers_never_hold_one_group_twice(endpoint, ctxt):
    """Threads claim (1 to 3 messages), then, while they hold them, read every
    message: no message of their groups may be held by another claim; then
    they delete what they got. Every message is claimed exactly once, each
    group's in post order."""
    items = [((group, index), f"g{group}") for index in range(PER_GROUP)
             for group in range(GROUPS)]
    posted = post(endpoint, ctxt, items)
    lock = threading.Lock()
    overlaps: list[tuple[str, str, str]] = []
    order: dict[str, list[int]] = collections.defaultdict(list)

    def claimer(index):
        rng = random.Random(index)
        while True:
            result = claim(endpoint, make_ctxt(), limit=rng.randint(1, 3), ttl=600)
            if not result["messages"]:
                if endpoint.queue_stats(ctxt, queue="q")["total"] == 0:
                    return
                continue
            cid = result["claim_id"]
            groups = {m["group"] for m in result["messages"]}
            with lock:
                for m in result["messages"]:
                    order[m["group"]].append(m["body"][1])
            # Committed state, while this claim is alive and holds its messages.
            for m in endpoint.message_get_many(ctxt, queue="q", message_ids=posted):
                if m["group"] in groups and m["claim_id"] not in (None, cid):
                    with lock:
                        overlaps.append((m["group"], m["claim_id"], cid))
            endpoint.message_delete_many(ctxt, queue="q",
                                         message_ids=[m["id"] for m in result["messages"]],
                                         claim_ids=[cid])

    _run_all(claimer, threads=6)
    assert overlaps == []
    assert order == {f"g{group}": list(range(PER_GROUP)) for group in range(GROUPS)}

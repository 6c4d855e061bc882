"""Contract: subscriptions and the notification outbox on every backend.

rest-v2.md §6, semantics.md §10, notifications.md §2-3 and §6-7 from the
storage side: subscription lifecycle and expiry, the notifier stage writing
outbox rows inside the post's transaction (and not at all when it rolls
back), confirmation rows, and outbox leases between dispatchers.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from herald.common import errors, signing
from herald.common.rpc.coalescer import op_to_wire
from herald.storage import outbox
from herald.storage.endpoint import StorageEndpoint
from herald.storage.outbox import OutboxController

from .conftest import make_ctxt

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def overrides(conf: Any) -> Iterator[Any]:
    """Set options for one test; every one is cleared afterwards."""
    done: list[tuple[str, str | None]] = []

    def set_(name: str, value: Any, group: str | None = None) -> None:
        conf.set_override(name, value, group=group)
        done.append((name, group))

    yield set_
    for name, group in done:
        conf.clear_override(name, group=group)


def create(endpoint, ctxt, subscriber=HOOK, queue="q", ttl=None, options=None, **kw):
    return endpoint.subscription_create(ctxt, queue=queue, subscriber=subscriber, ttl=ttl,
                                        options=options, **kw)


def post(endpoint, ctxt, bodies, queue="q", ttl=300):
    return endpoint.message_post(ctxt, queue=queue,
                                 messages=[{"body": b, "ttl": ttl} for b in bodies],
                                 body_size=10)


def rows(database, queue="q"):
    return OutboxController(database).rows(queue=queue)


# -- subscriptions --------------------------------------------------------------


def test_create_get_list_and_defaults(endpoint, ctxt, clock):
    result = create(endpoint, ctxt, options={"a": 1})
    assert result["created"] is True and result["confirmed"] is False
    sid = result["subscription_id"]
    assert endpoint.queue_get_metadata(ctxt, queue="q") == {}  # queue created
    clock.advance(5)
    got = endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)
    delivery = got.pop("delivery")
    assert got == {"id": sid, "source": "q", "subscriber": HOOK, "ttl": 3600, "age": 5,
                   "options": {"a": 1, "signing_secret": result["signing_secret"]},
                   "confirmed": False}
    assert delivery["attempts"] == 0 and delivery["pending"] == 0
    listed = endpoint.subscription_list(ctxt, queue="q", marker=None, limit=10)
    assert [s["id"] for s in listed["subscriptions"]] == [sid]
    assert "delivery" not in listed["subscriptions"][0]
    assert listed["subscriptions"][0]["options"] == {"a": 1}  # no secret in a listing


def test_duplicate_returns_existing_unchanged(endpoint, ctxt):
    first = create(endpoint, ctxt, ttl=120)
    again = create(endpoint, ctxt, ttl=999, options={"x": 1})
    assert again == {"subscription_id": first["subscription_id"], "created": False,
                     "confirmed": False, "signing_secret": first["signing_secret"]}
    got = endpoint.subscription_get(ctxt, queue="q", subscription_id=first["subscription_id"])
    assert got["ttl"] == 120 and got["options"] == {"signing_secret": first["signing_secret"]}
    endpoint.subscription_confirm(ctxt, queue="q", subscription_id=first["subscription_id"],
                                  confirmed=True)
    assert create(endpoint, ctxt)["confirmed"] is True


def test_list_is_creation_order_with_marker(endpoint, ctxt):
    made = [create(endpoint, ctxt, subscriber=f"http://h/{i}")["subscription_id"]
            for i in range(5)]
    page1 = endpoint.subscription_list(ctxt, queue="q", marker=None, limit=3)
    assert [s["id"] for s in page1["subscriptions"]] == made[:3]
    page2 = endpoint.subscription_list(ctxt, queue="q", marker=page1["marker"], limit=3)
    assert [s["id"] for s in page2["subscriptions"]] == made[3:]
    assert endpoint.subscription_list(ctxt, queue="q", marker=made[-1],
                                      limit=3)["subscriptions"] == []
    # other project / queue see nothing
    assert endpoint.subscription_list(make_ctxt("p2"), queue="q", marker=None,
                                      limit=10)["subscriptions"] == []
    assert endpoint.subscription_list(ctxt, queue="other", marker=None,
                                      limit=10)["subscriptions"] == []


def test_expired_behaves_as_deleted(endpoint, ctxt, clock, database):
    sid = create(endpoint, ctxt, ttl=60)["subscription_id"]
    keep = create(endpoint, ctxt, subscriber="http://h/keep", ttl=3600)["subscription_id"]
    clock.advance(61)
    with pytest.raises(errors.SubscriptionDoesNotExist):
        endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)
    listed = endpoint.subscription_list(ctxt, queue="q", marker=None, limit=10)
    assert [s["id"] for s in listed["subscriptions"]] == [keep]
    post(endpoint, ctxt, [1])
    assert {r.subscription_id for r in rows(database)} == {keep}
    again = create(endpoint, ctxt, ttl=60)
    assert again["created"] is True and again["subscription_id"] != sid


def test_get_is_scoped_and_tolerates_garbage_ids(endpoint, ctxt):
    sid = create(endpoint, ctxt)["subscription_id"]
    for queue, project, sub_id in (("other", "p1", sid), ("q", "p2", sid),
                                   ("q", "p1", "not-an-id"), ("q", "p1", "0" * 32)):
        with pytest.raises(errors.SubscriptionDoesNotExist, match="does not exist"):
            endpoint.subscription_get(make_ctxt(project), queue=queue, subscription_id=sub_id)


def test_update_fields_ttl_restart_and_conflict(endpoint, ctxt, clock):
    created = create(endpoint, ctxt, ttl=100)
    sid = created["subscription_id"]
    other = create(endpoint, ctxt, subscriber="http://h/other")["subscription_id"]
    clock.advance(90)
    endpoint.subscription_update(ctxt, queue="q", subscription_id=sid,
                                 changes={"ttl": 100, "options": {"b": 2},
                                          "subscriber": "http://h/new"})
    clock.advance(90)  # alive: expiry restarted at the PATCH
    got = endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)
    # Options without signing_secret keep the secret.
    assert got["subscriber"] == "http://h/new"
    assert got["options"] == {"b": 2, "signing_secret": created["signing_secret"]}
    assert got["ttl"] == 100
    with pytest.raises(errors.Conflict):
        endpoint.subscription_update(ctxt, queue="q", subscription_id=sid,
                                     changes={"subscriber": "http://h/other"})
    assert other
    with pytest.raises(errors.SubscriptionDoesNotExist):
        endpoint.subscription_update(ctxt, queue="q2", subscription_id=sid,
                                     changes={"ttl": 100})


def test_delete_and_purge(endpoint, ctxt, database):
    sid = create(endpoint, ctxt)["subscription_id"]
    post(endpoint, ctxt, [1, 2])
    assert len(rows(database)) == 2
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=sid)
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=sid)  # idempotent
    endpoint.subscription_delete(ctxt, queue="q", subscription_id="junk")
    assert rows(database) == []  # pending deliveries went with it
    for i in range(25):
        create(endpoint, ctxt, subscriber=f"http://h/{i}")
    endpoint.queue_purge(ctxt, queue="q", resource_types=["messages"])
    assert len(endpoint.subscription_list(ctxt, queue="q", marker=None,
                                          limit=20)["subscriptions"]) == 20
    endpoint.queue_purge(ctxt, queue="q", resource_types=["subscriptions"])
    assert endpoint.subscription_list(ctxt, queue="q", marker=None,
                                      limit=20)["subscriptions"] == []


def test_queue_delete_keeps_subscriptions(endpoint, ctxt):
    sid = create(endpoint, ctxt)["subscription_id"]
    endpoint.queue_delete(ctxt, queue="q")
    assert endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)["id"] == sid


def test_confirm_is_scoped_by_project_and_queue(endpoint, ctxt):
    # Like every by-id call (the reference checks the project only).
    sid = create(endpoint, ctxt)["subscription_id"]
    with pytest.raises(errors.SubscriptionDoesNotExist):
        endpoint.subscription_confirm(ctxt, queue="any", subscription_id=sid, confirmed=True)
    with pytest.raises(errors.SubscriptionDoesNotExist):
        endpoint.subscription_confirm(make_ctxt("p2"), queue="q", subscription_id=sid,
                                      confirmed=True)
    assert not endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)["confirmed"]
    endpoint.subscription_confirm(ctxt, queue="q", subscription_id=sid, confirmed=True)
    assert endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)["confirmed"]


def test_websocket_connection_subscriptions(endpoint, ctxt, database):
    conn = {"gateway_id": "gw.1.abc", "connection_id": "c" * 32}
    made = endpoint.subscription_create(ctxt, queue="q", subscriber=None, ttl=None,
                                        options=None, connection=conn)
    got = endpoint.subscription_get(ctxt, queue="q", subscription_id=made["subscription_id"])
    assert got["subscriber"].startswith("http://")  # looks like an http subscription
    post(endpoint, ctxt, [1])
    # Pushed by one broadcast per gateway once committed, never an outbox row
    # (docs/websocket-subscriptions.md; tests/ws/test_broadcast.py).
    assert rows(database) == []
    assert endpoint.subscription_delete_connection(ctxt, **conn) == 1
    assert endpoint.subscription_list(ctxt, queue="q", marker=None,
                                      limit=10)["subscriptions"] == []
    assert rows(database) == []


# -- the notifier stage -------------------------------------------------------------


def test_post_writes_one_row_per_message_and_subscriber(endpoint, ctxt, database):
    a = create(endpoint, ctxt, subscriber="http://h/a", options={"post_data": "x"})
    b = create(endpoint, ctxt, subscriber="mailto:a@example.com")
    create(endpoint, ctxt, subscriber="http://h/other-queue", queue="q2")
    endpoint.subscription_create(make_ctxt("p2"), queue="q", subscriber="http://h/p2",
                                 ttl=None, options=None)
    inserts: list[str] = []

    @sa.event.listens_for(database.engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            inserts.append(statement)

    try:
        ids = endpoint.message_post(
            make_ctxt(), queue="q", body_size=10,
            messages=[{"body": {"event": "x"}, "ttl": 120}, {"body": "two", "ttl": None}])
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", count)
    assert len(ids) == 2
    assert len(inserts) == 1  # one INSERT for all the rows of the post
    written = rows(database)
    assert len(written) == 4
    assert {r.subscription_id for r in written} == {a["subscription_id"],
                                                    b["subscription_id"]}
    payloads = [r.payload for r in written if r.subscription_id == a["subscription_id"]]
    assert payloads == [
        json.dumps({"ttl": 120, "body": {"event": "x"}, "Message_Type": "Notification",
                    "queue_name": "q"}),
        json.dumps({"ttl": 3600, "body": "two", "Message_Type": "Notification",
                    "queue_name": "q"}),
    ]
    assert payloads[0] == ('{"ttl": 120, "body": {"event": "x"}, '
                           '"Message_Type": "Notification", "queue_name": "q"}')
    assert all(r.state == "pending" and r.attempts == 0 for r in written)
    assert all(r.request_id == ctxt.request_id or r.request_id.startswith("req-")
               for r in written)
    assert json.loads(written[0].options)["post_data"] == "x"


def test_the_first_post_after_a_subscription_notifies_it(endpoint, ctxt, database, conf):
    """On PostgreSQL a post to a queue without subscribers skips the
    notifier: its statement checks there are none instead of reading them.
    Workers that posted that way before a subscription was created must
    notify it from the next post on, alone or coalesced, and stop once it
    is gone."""
    other = StorageEndpoint(database, conf)  # a second worker

    def coalesced(worker, body):
        ops = [op_to_wire(ctxt, "message_post", {
            "queue": queue, "body_size": 10, "messages": [{"body": body, "ttl": 300}]})
            for queue in ("q", "q2")]
        replies = worker.batch(make_ctxt(""), ops=ops)
        assert all("result" in reply for reply in replies)

    for worker in (endpoint, other):
        for _ in range(2):  # the queues' metadata is known: the short path
            post(worker, ctxt, ["before"])
            coalesced(worker, "before")
    assert rows(database) == []
    subscription = create(other, ctxt)
    post(endpoint, ctxt, ["alone"])
    coalesced(endpoint, "coalesced")
    coalesced(other, "on the other worker")
    post(other, ctxt, ["alone on the other worker"])
    assert [json.loads(row.payload)["body"] for row in rows(database)] == [
        "alone", "coalesced", "on the other worker", "alone on the other worker"]
    endpoint.subscription_delete(ctxt, queue="q", subscription_id=subscription[
        "subscription_id"])
    assert rows(database) == []  # its pending rows went with it
    post(endpoint, ctxt, ["after"])
    coalesced(other, "after")
    assert rows(database) == []


def test_payload_has_delay_only_on_delayed_queues(endpoint, ctxt, database):
    endpoint.queue_create(ctxt, queue="q", metadata={"_default_message_delay": 5})
    create(endpoint, ctxt)
    endpoint.message_post(ctxt, queue="q", body_size=1,
                          messages=[{"body": 1, "ttl": 60}, {"body": 2, "ttl": 60, "delay": 0}])
    assert [json.loads(r.payload) for r in rows(database)] == [
        {"ttl": 60, "body": 1, "delay": 5, "Message_Type": "Notification", "queue_name": "q"},
        {"ttl": 60, "body": 2, "delay": 0, "Message_Type": "Notification", "queue_name": "q"},
    ]


def test_request_id_and_retry_policy_travel_on_rows(endpoint, database):
    ctxt = make_ctxt()
    endpoint.queue_create(ctxt, queue="q", metadata={"_retry_policy": {"minimum_delay": 7,
                                                                       "maximum_delay": 40}})
    create(endpoint, ctxt)
    create(endpoint, ctxt, subscriber="http://h/own",
           options={"_retry_policy": {"retries_with_no_delay": 1}})
    post(endpoint, ctxt, [1])
    policies = {r.subscriber: json.loads(r.options)["_retry_policy"] for r in rows(database)}
    assert policies == {HOOK: {"minimum_delay": 7, "maximum_delay": 40},
                        "http://h/own": {"retries_with_no_delay": 1}}
    assert {r.request_id for r in rows(database)} == {ctxt.request_id}


def test_require_confirmation_notifies_only_confirmed(endpoint, ctxt, database, overrides):
    overrides("require_confirmation", True, group="notification")
    confirmed = create(endpoint, ctxt, subscriber="http://h/yes")["subscription_id"]
    create(endpoint, ctxt, subscriber="http://h/no")
    endpoint.subscription_confirm(ctxt, queue="q", subscription_id=confirmed, confirmed=True)
    post(endpoint, ctxt, [1])
    assert [r.subscription_id for r in rows(database)] == [confirmed]


def test_empty_pipeline_writes_nothing(database, conf, ctxt, overrides):
    overrides("message_pipeline", [], group="storage")
    endpoint = StorageEndpoint(database, conf)
    create(endpoint, ctxt)
    post(endpoint, ctxt, [1])
    assert rows(database) == []


def test_rolled_back_post_notifies_nobody(database, conf, ctxt, overrides):
    seen: list[int] = []

    def explode_factory(_conf, _wiring):
        def explode(conn, batch):
            # The notifier ran before this stage: its rows are in the
            # transaction, which must now roll back with the messages.
            seen.append(conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one())
            raise RuntimeError("injected failure after the outbox rows")
        return explode

    database.wiring.stages["explode"] = explode_factory
    try:
        overrides("message_pipeline", ["notifier", "explode"], group="storage")
        endpoint = StorageEndpoint(database, conf)
        create(endpoint, ctxt)
        database.wiring.outbox.clear()
        with pytest.raises(RuntimeError):
            post(endpoint, ctxt, [1, 2])
    finally:
        del database.wiring.stages["explode"]
    assert seen == [2]
    assert rows(database) == []
    assert endpoint.message_list(ctxt, queue="q", marker=None, limit=10, echo=True,
                                 include_claimed=True, include_delayed=True)["messages"] == []
    assert not database.wiring.outbox.is_set()


def test_unknown_stage_is_refused(database, conf, overrides):
    overrides("message_pipeline", ["notifier", "nope"], group="storage")
    with pytest.raises(ValueError, match="nope"):
        StorageEndpoint(database, conf)


# -- confirmation messages ------------------------------------------------------------


def test_confirmation_rows(endpoint, ctxt, database, overrides, clock):
    overrides("require_confirmation", True, group="notification")
    overrides("secret_key", "s3cret", group="signed_url")
    overrides("public_endpoint", "http://api.example", group="notification")
    made = endpoint.subscription_create(ctxt, queue="q", subscriber=HOOK, ttl=600,
                                        options=None, send_confirmation=True)
    sid = made["subscription_id"]
    # hitting the unconfirmed one again re-sends; ws-style creates never send
    endpoint.subscription_create(ctxt, queue="q", subscriber=HOOK, ttl=None, options=None,
                                 send_confirmation=True)
    create(endpoint, ctxt, subscriber="http://h/silent")
    written = rows(database)
    assert [r.kind for r in written] == ["confirmation", "confirmation"]
    payload = json.loads(written[0].payload)
    path = f"/v2/queues/q/subscriptions/{sid}/confirm"
    assert payload["Message_Type"] == "SubscriptionConfirmation"
    assert payload["URL-Paths"] == path and payload["URL-Methods"] == "PUT"
    assert payload["X-Project-ID"] == ctxt.project_id and payload["queue_name"] == "q"
    assert payload["SubscribeBody"] == {"confirmed": True}
    assert payload["WSGISubscribeURL"] == "http://api.example" + path
    assert "WebSocketSubscribeURL" not in payload
    assert signing.verify("s3cret", payload["URL-Signature"], [path], ["PUT"],
                          ctxt.project_id, payload["URL-Expires"])
    # nothing is notified before the confirmation...
    post(endpoint, ctxt, [1])
    assert len(rows(database)) == 2
    endpoint.subscription_confirm(ctxt, queue="q", subscription_id=sid, confirmed=True)
    post(endpoint, ctxt, [2])
    assert [r.kind for r in rows(database)][-1] == "notification"
    # ...and un-confirming sends an UnsubscribeConfirmation
    endpoint.subscription_confirm(ctxt, queue="q", subscription_id=sid, confirmed=False)
    last = json.loads(rows(database)[-1].payload)
    assert last["Message_Type"] == "UnsubscribeConfirmation"


def test_no_confirmation_without_secret_key(endpoint, ctxt, database, overrides):
    overrides("require_confirmation", True, group="notification")
    endpoint.subscription_create(ctxt, queue="q", subscriber=HOOK, ttl=None, options=None,
                                 send_confirmation=True)
    assert rows(database) == []


# -- leases -------------------------------------------------------------------------------


def test_leases_are_exclusive_and_expire(endpoint, ctxt, database, clock):
    create(endpoint, ctxt)
    post(endpoint, ctxt, list(range(5)))
    box = OutboxController(database)
    assert box.due_queues(30.0) == [(ctxt.project_id, "q", False)]
    first = box.lease("w1", [(ctxt.project_id, "q")], 60, limit=3)
    second = box.lease("w2", [(ctxt.project_id, "q")], 60, limit=10)
    assert len(first) == 3 and len(second) == 2
    assert {r.seq for r in first}.isdisjoint({r.seq for r in second})
    assert box.lease("w3", [(ctxt.project_id, "q")], 60, limit=10) == []
    assert box.lease("w3", [("other", "q")], 60, limit=10) == []
    box.record_attempt(first[0], "w1", delivered=True, failed=False, status=200, error=None,
                       next_attempt=None, attempts=1)
    box.record_attempt(first[1], "w1", delivered=False, failed=False, status=500,
                       error="HTTP 500", next_attempt=clock() + 100, attempts=1)
    clock.advance(61)  # w1 and w2 died: their other leases ran out
    again = box.lease("w3", [(ctxt.project_id, "q")], 60, limit=10)
    assert sorted(r.seq for r in again) == sorted([first[2].seq] + [r.seq for r in second])
    # a stale owner cannot record over the new lease
    box.record_attempt(first[2], "w1", delivered=True, failed=False, status=200, error=None,
                       next_attempt=None, attempts=1)
    states = {r.seq: (r.state, r.attempts, r.lease_owner) for r in box.rows()}
    assert states[first[0].seq][:2] == ("delivered", 1)
    assert states[first[1].seq] == ("pending", 1, None)
    assert states[first[2].seq] == ("pending", 0, "w3")
    clock.advance(100)  # the retry is due (and w3's lease ran out too)
    assert [r.seq for r in box.lease("w4", [(ctxt.project_id, "q")], 60, 10)] == sorted(
        [first[1].seq, first[2].seq] + [r.seq for r in second])
    sub = endpoint.subscription_list(ctxt, queue="q", marker=None, limit=1)["subscriptions"]
    stats = endpoint.subscription_get(ctxt, queue="q", subscription_id=sub[0]["id"])
    assert stats["delivery"]["attempts"] == 2 and stats["delivery"]["delivered"] == 1
    assert stats["delivery"]["last_status"] == 500
    assert stats["delivery"]["last_success"] is not None
    assert stats["delivery"]["pending"] == 4


def test_deliveries_are_recorded_together_only_where_the_lease_is_ours(endpoint, ctxt,
                                                                         database):
    """``record_deliveries`` (the dispatcher's group commit) leaves what
    ``record_attempt(delivered=True)`` leaves, row by row, and skips a row
    whose lease another dispatcher holds by now."""
    create(endpoint, ctxt)
    post(endpoint, ctxt, list(range(4)))
    box = OutboxController(database)
    mine = box.lease("w1", [(ctxt.project_id, "q")], 60, limit=3)
    box.release([mine[2].seq], "w1")  # as if its lease had run out ...
    [taken] = box.lease("w2", [(ctxt.project_id, "q")], 60, limit=1)  # ... and w2 took it
    assert taken.seq == mine[2].seq
    box.record_deliveries([outbox.Delivered(mine[0], 1, 200, 4.0),
                           outbox.Delivered(mine[1], 3, 204, 5.0),
                           outbox.Delivered(mine[2], 1, 200, 6.0)], "w1")
    states = {r.seq: (r.state, r.attempts, r.last_status, r.lease_owner) for r in box.rows()}
    assert states[mine[0].seq] == ("delivered", 1, 200, None)
    assert states[mine[1].seq] == ("delivered", 3, 204, None)
    assert states[taken.seq] == ("pending", 0, None, "w2")
    sub = endpoint.subscription_list(ctxt, queue="q", marker=None, limit=1)["subscriptions"]
    stats = endpoint.subscription_get(ctxt, queue="q", subscription_id=sub[0]["id"])
    assert stats["delivery"]["attempts"] == 2 and stats["delivery"]["delivered"] == 2
    assert stats["delivery"]["consecutive_failures"] == 0
    history = endpoint.message_deliveries(ctxt, queue="q", message_id=mine[1].message_id)
    [attempt] = history["pushes"]
    assert (attempt["outcome"], attempt["attempt"], attempt["status"]) == ("delivered", 3, 204)
    assert attempt["latency_ms"] == 5.0


def test_lease_drops_rows_of_expired_subscriptions(endpoint, ctxt, database, clock):
    create(endpoint, ctxt, ttl=60)
    post(endpoint, ctxt, [1])
    clock.advance(61)
    box = OutboxController(database)
    assert box.lease("w", [(ctxt.project_id, "q")], 60, 10) == []
    assert box.rows() == []


def test_overdue_queues_are_flagged(endpoint, ctxt, database, clock):
    create(endpoint, ctxt)
    post(endpoint, ctxt, [1])
    clock.advance(31)
    assert OutboxController(database).due_queues(30.0) == [(ctxt.project_id, "q", True)]


def test_delivered_rows_are_collected_after_retention(endpoint, ctxt, database, clock):
    create(endpoint, ctxt)
    post(endpoint, ctxt, [1, 2])
    box = OutboxController(database)
    leased = box.lease("w", [(ctxt.project_id, "q")], 60, 10)
    box.record_attempt(leased[0], "w", delivered=True, failed=False, status=200,
                       error=None, next_attempt=None, attempts=1)
    box.record_attempt(leased[1], "w", delivered=False, failed=True, status=500,
                       error="HTTP 500", next_attempt=None, attempts=15)
    clock.advance(10)
    assert box.collect_garbage(5) == 1
    assert [r.state for r in box.rows()] == ["failed"]


def test_filter_policies_write_rows_only_for_matching_messages(endpoint, ctxt, database,
                                                               monkeypatch):
    """Issue 23 §1: the notifier applies each subscription's ``options.filter``
    (webhook and websocket connection subscribers alike), alone and in a
    coalesced batch; a filtered-out message costs no outbox row, and each
    stored policy is compiled once, not per message or post. A connection
    subscriber's messages are the payloads of its broadcasts, not rows."""
    from herald.common import filter_policy

    broadcasts: list[Any] = []
    monkeypatch.setattr(database.wiring.broadcasts, "send", broadcasts.extend)
    compiles: list[Any] = []
    real = filter_policy.compile_policy
    monkeypatch.setattr(filter_policy, "compile_policy",
                        lambda policy, limits=None: compiles.append(policy) or real(policy))
    filter_policy.of_options.cache_clear()
    example = {"kind": ["order"], "amount": [{"numeric": [">=", 100]}]}
    create(endpoint, ctxt, subscriber="http://h/orders", options={"filter": example})
    endpoint.subscription_create(ctxt, queue="q", subscriber=None, ttl=None,
                                 options={"filter": {"kind": ["refund"]}},
                                 connection={"gateway_id": "gw.1.abc", "connection_id": "c" * 32})
    create(endpoint, ctxt, subscriber="http://h/all")
    post(endpoint, ctxt, [{"kind": "order", "amount": 150}, {"kind": "order", "amount": 5},
                          {"kind": "refund", "amount": 500}, "plain text"])
    ops = [op_to_wire(ctxt, "message_post", {
        "queue": "q", "body_size": 10, "messages": [{"body": body, "ttl": 300}]})
        for body in ({"kind": "order", "amount": 100}, {"kind": "other"})]
    assert all("result" in reply for reply in endpoint.batch(make_ctxt(""), ops=ops))
    written = [(r.subscriber_kind, r.subscriber.rsplit("/", 1)[-1], json.loads(r.payload)["body"])
               for r in rows(database)]
    by_subscriber: dict[str, list[Any]] = {}
    for kind, who, body in written:
        by_subscriber.setdefault("websocket" if kind == "websocket" else who, []).append(body)
    assert "websocket" not in by_subscriber
    by_subscriber["websocket"] = [payload["body"] for broadcast in broadcasts
                                  for payload in broadcast.payloads]
    assert all(b.connections == ["c" * 32] for b in broadcasts)
    assert by_subscriber == {
        "orders": [{"kind": "order", "amount": 150}, {"kind": "order", "amount": 100}],
        "websocket": [{"kind": "refund", "amount": 500}],
        "all": [{"kind": "order", "amount": 150}, {"kind": "order", "amount": 5},
                {"kind": "refund", "amount": 500}, "plain text",
                {"kind": "order", "amount": 100}, {"kind": "other"}],
    }
    assert len(compiles) == 2  # one per stored policy, for six messages in three posts


def test_a_first_send_to_a_newly_subscribed_queue_stores_its_message(endpoint, database, conf):
    """Found by tests/e2e/test_filter_release.py: on PostgreSQL, a worker that
    knew the queue without subscribers skips the stages; once one exists its
    locked INSERT inserts nothing and the post starts over with them. The
    post's operation key, written before that INSERT, must not commit
    without the messages: the start-over would find it and answer ids of
    messages that were never stored."""
    ctxt = make_ctxt()
    for n in range(2):  # the worker remembers the queue (and that it had nobody to notify)
        post(endpoint, ctxt, [f"before {n}"])
    create(endpoint, ctxt)
    sent = dataclasses.replace(ctxt, operation_id=uuid.uuid4().hex, attempt=1)
    [message_id] = post(endpoint, sent, ["acknowledged"])
    assert endpoint.message_get(ctxt, queue="q", message_id=message_id)["body"] == "acknowledged"
    assert [json.loads(r.payload)["body"] for r in rows(database)] == ["acknowledged"]

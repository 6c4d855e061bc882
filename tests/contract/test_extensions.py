"""Contract: Herald's extensions on every backend (StorageAPI 1.3).

Idempotent posts (same key -> same ids, window expiry, concurrent duplicates
insert once), the delivery history (claims recorded in the claim's
transaction, push attempts linked to messages), subscription health, and a
test-fired subscription against a local HTTP receiver.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from herald.common import errors
from herald.storage import history
from herald.storage.outbox import OutboxController
from herald.storage.schema import claim_history, idempotency_keys, messages

from .conftest import make_ctxt


def post(endpoint, ctxt, bodies, queue="q", key=None, ttl=300):
    return endpoint.message_post(ctxt, queue=queue,
                                 messages=[{"body": b, "ttl": ttl} for b in bodies],
                                 body_size=10, idempotency_key=key)


def count_messages(database, queue="q") -> int:
    with database.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages)
                            .where(messages.c.queue == queue)).scalar_one()


# -- idempotent posts ----------------------------------------------------------


def test_same_key_returns_the_first_ids(endpoint, ctxt, database):
    first = post(endpoint, ctxt, ["a", "b"], key="order-42")
    again = post(endpoint, ctxt, ["a", "b"], key="order-42")
    assert again == first
    assert count_messages(database) == 2
    other = post(endpoint, ctxt, ["a", "b"], key="order-43")
    assert other != first and len(other) == 2
    assert count_messages(database) == 4
    unkeyed = post(endpoint, ctxt, ["a", "b"])
    assert post(endpoint, ctxt, ["a", "b"]) != unkeyed


def test_key_is_per_project_and_queue(endpoint, ctxt):
    first = post(endpoint, ctxt, ["a"], key="k")
    assert post(endpoint, ctxt, ["a"], key="k", queue="other") != first
    assert post(endpoint, make_ctxt("p2"), ["a"], key="k") != first


def test_same_key_other_messages_is_a_conflict(endpoint, ctxt, database):
    post(endpoint, ctxt, ["a"], key="k")
    with pytest.raises(errors.Conflict):
        post(endpoint, ctxt, ["b"], key="k")
    assert count_messages(database) == 1


def test_key_expires_after_the_window(endpoint, ctxt, clock, conf, database):
    first = post(endpoint, ctxt, ["a"], key="k")
    clock.advance(conf.storage.idempotency_window - 1)
    assert post(endpoint, ctxt, ["a"], key="k") == first
    clock.advance(2)
    second = post(endpoint, ctxt, ["a"], key="k")
    assert second != first
    # The new post is remembered in turn.
    assert post(endpoint, ctxt, ["a"], key="k") == second
    history.collect_garbage(database, 60)
    clock.advance(conf.storage.idempotency_window + 1)
    history.collect_garbage(database, 60)
    with database.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)
                            ).scalar_one() == 0


def test_concurrent_duplicates_insert_once(endpoint, ctxt, database):
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome: Any = post(endpoint, ctxt, ["pay", "ship"], key="dup", queue="race")
        except Exception as exc:  # recorded: the assertion below shows it
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(isinstance(r, list) for r in results), results
    assert len({tuple(r) for r in results}) == 1
    assert count_messages(database, "race") == 2


# -- delivery history -------------------------------------------------------------


def test_claims_are_recorded_with_client_and_count(endpoint, database, clock):
    alice, bob = make_ctxt("p1"), make_ctxt("p1")
    [mid, other] = post(endpoint, alice, ["x", "y"])
    first = endpoint.claim_create(alice, queue="q", ttl=60, grace=60, limit=1)
    assert [m["id"] for m in first["messages"]] == [mid]
    endpoint.claim_delete(alice, queue="q", claim_id=first["claim_id"])
    clock.advance(5)
    second = endpoint.claim_create(bob, queue="q", ttl=120, grace=60, limit=5)
    found = endpoint.message_deliveries(bob, queue="q", message_id=mid)
    assert found["exists"] is True and found["message_id"] == mid
    assert [(c["claim_id"], c["client_id"], c["claim_count"], c["ttl"])
            for c in found["claims"]] == [
        (first["claim_id"], alice.client_id, 1, 60),
        (second["claim_id"], bob.client_id, 2, 120)]
    assert found["claims"][0]["claimed_at"].endswith("Z")
    assert found["pushes"] == []
    # One row per claimed message, in the claim's transaction.
    with database.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(claim_history)
                            .where(claim_history.c.claim_id == second["claim_id"])
                            ).scalar_one() == 2
    # The history outlives the message...
    endpoint.message_delete(bob, queue="q", message_id=mid, claim_id=second["claim_id"])
    gone = endpoint.message_deliveries(bob, queue="q", message_id=mid)
    assert gone["exists"] is False and len(gone["claims"]) == 2
    # ...but not its retention.
    clock.advance(120)
    history.collect_garbage(database, 60)
    with pytest.raises(errors.MessageDoesNotExist):
        endpoint.message_deliveries(bob, queue="q", message_id=mid)
    assert endpoint.message_deliveries(bob, queue="q", message_id=other)["claims"] == []


def test_history_is_scoped(endpoint, ctxt):
    [mid] = post(endpoint, ctxt, ["x"])
    endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)
    for other_ctxt, queue in ((make_ctxt("p2"), "q"), (ctxt, "other")):
        with pytest.raises(errors.MessageDoesNotExist):
            endpoint.message_deliveries(other_ctxt, queue=queue, message_id=mid)
    with pytest.raises(errors.MessageDoesNotExist):
        endpoint.message_deliveries(ctxt, queue="q", message_id="not-an-id")


def test_push_attempts_and_subscription_health(endpoint, ctxt, database, clock):
    created = endpoint.subscription_create(ctxt, queue="q", subscriber="http://127.0.0.1:9/h",
                                           ttl=3600, options={})
    sid = created["subscription_id"]
    [mid] = post(endpoint, ctxt, ["x"])
    box = OutboxController(database)
    [row] = box.lease("w1", [(ctxt.project_id, "q")], 60, limit=10)
    assert row.message_id == mid
    box.record_attempt(row, "w1", delivered=False, failed=False, status=503,
                       error="HTTP 503", next_attempt=None, attempts=1, latency_ms=12.5)
    box.record_attempt(row, "w1", delivered=False, failed=False, status=None,
                       error="timeout", next_attempt=None, attempts=2, latency_ms=2000)
    health = endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)["delivery"]
    assert health["consecutive_failures"] == 2 and health["healthy"] is False
    assert health["last_failure"] is not None and health["last_success"] is None
    assert health["last_error"] == "timeout"
    box.record_attempt(row, "w1", delivered=True, failed=False, status=200, error=None,
                       next_attempt=None, attempts=3, latency_ms=8)
    health = endpoint.subscription_get(ctxt, queue="q", subscription_id=sid)["delivery"]
    assert health["consecutive_failures"] == 0 and health["healthy"] is True
    assert health["last_success"] is not None and health["delivered"] == 1
    pushes = endpoint.message_deliveries(ctxt, queue="q", message_id=mid)["pushes"]
    assert [(p["attempt"], p["outcome"], p["status"], p["latency_ms"]) for p in pushes] == [
        (1, "retry", 503, 12.5), (2, "retry", None, 2000.0), (3, "delivered", 200, 8.0)]
    assert {p["subscription_id"] for p in pushes} == {sid}
    assert pushes[0]["subscriber"] == "http://127.0.0.1:9/h"
    assert pushes[0]["kind"] == "notification"


# -- test-fire ------------------------------------------------------------------------


def test_test_fire_reports_the_outcome(endpoint, ctxt, receiver, database):
    ok = endpoint.subscription_create(ctxt, queue="q", subscriber=f"{receiver.url}/ok",
                                      ttl=3600, options={})["subscription_id"]
    bad = endpoint.subscription_create(ctxt, queue="q", subscriber=f"{receiver.url}/bad",
                                       ttl=3600, options={})["subscription_id"]
    result = endpoint.subscription_test(ctxt, queue="q", subscription_id=ok)
    assert result["delivered"] is True and result["status"] == 200
    assert result["error"] is None and result["latency_ms"] > 0
    sent = receiver.bodies[-1][1]
    assert sent == result["payload"]
    assert sent["Message_Type"] == "TestNotification" and sent["subscription_id"] == ok
    failed = endpoint.subscription_test(ctxt, queue="q", subscription_id=bad)
    assert failed["delivered"] is False and failed["status"] == 500
    health = endpoint.subscription_get(ctxt, queue="q", subscription_id=bad)["delivery"]
    assert health["consecutive_failures"] == 1 and health["last_status"] == 500
    assert endpoint.subscription_get(ctxt, queue="q", subscription_id=ok)[
        "delivery"]["last_success"] is not None
    # Test rows are never left for the dispatchers.
    assert OutboxController(database).lease("w", [(ctxt.project_id, "q")], 60, 10) == []
    with pytest.raises(errors.SubscriptionDoesNotExist):
        endpoint.subscription_test(make_ctxt("p2"), queue="q", subscription_id=ok)


def test_losing_a_key_race_returns_the_winners_ids(endpoint, ctxt, database, database_url,
                                                   monkeypatch):
    """The fallback behind the queue lock: if a duplicate commits between our
    lookup and our insert, the primary key refuses ours, our messages roll
    back, and the retry answers with the winner's ids. (PostgreSQL only: on
    SQLite nobody can commit while our immediate transaction runs.)"""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers; the race cannot happen there")
    import json

    from herald.storage import idempotency

    endpoint.queue_create(ctxt, queue="raced", metadata={})
    real_lookup = idempotency.lookup
    calls = {"n": 0}

    def lookup_then_lose(conn, project, queue, key, print_, now):
        calls["n"] += 1
        found = real_lookup(conn, project, queue, key, print_, now)
        if calls["n"] == 1:
            # The winner commits on its own connection right after we looked.
            with database.engine.begin() as other:
                other.execute(sa.insert(idempotency_keys).values(
                    project=project, queue=queue, key=key, fingerprint=print_,
                    message_ids=json.dumps(["0123456789abcdef0123456789abcdef"]),
                    created=now, expires=now + 60))
        return found

    monkeypatch.setattr(idempotency, "lookup", lookup_then_lose)
    ids = post(endpoint, ctxt, ["x"], key="k", queue="raced")
    assert ids == ["0123456789abcdef0123456789abcdef"]
    assert calls["n"] == 2
    assert count_messages(database, "raced") == 0

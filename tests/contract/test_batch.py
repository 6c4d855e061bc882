"""StorageAPI 1.2 ``batch`` on both backends: order, per-op outcomes, isolation."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.rpc.coalescer import error_from_wire, op_to_wire
from herald.storage import outbox
from tests.contract.conftest import make_ctxt


def post(ctxt: RequestContext, queue: str, body: Any, size: int = 10) -> dict[str, Any]:
    return op_to_wire(ctxt, "message_post", {"queue": queue, "body_size": size,
                                             "messages": [{"body": body, "ttl": 300}]})


def bodies(endpoint: Any, ctxt: RequestContext, queue: str) -> list[Any]:
    listed = endpoint.message_list(ctxt, queue=queue, limit=20, echo=True)
    return [m["body"] for m in listed["messages"]]


@contextlib.contextmanager
def savepoints_sent(database: Any) -> Iterator[list[str]]:
    """The SAVEPOINT statements the block sends to the database."""
    sent: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SAVEPOINT"):
            sent.append(statement)

    sa.event.listen(database.engine, "before_cursor_execute", on_execute)
    try:
        yield sent
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", on_execute)


@contextlib.contextmanager
def failing(database: Any, deletes: int = 0, rollbacks: int = 0) -> Iterator[dict[str, int]]:
    """The block's first ``deletes`` DELETE statements fail, then its first
    ``rollbacks`` rollbacks (a connection in trouble); yields what is left."""
    left = {"delete": deletes, "rollback": rollbacks}

    def broken() -> sa_exc.OperationalError:
        return sa_exc.OperationalError("DELETE", {}, Exception("connection in a bad state"))

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE") and left["delete"]:
            left["delete"] -= 1
            raise broken()

    def on_rollback(conn: Any) -> None:
        if not left["delete"] and left["rollback"]:
            left["rollback"] -= 1
            raise broken()

    sa.event.listen(database.engine, "before_cursor_execute", on_execute)
    sa.event.listen(database.engine, "rollback", on_rollback)
    try:
        yield left
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", on_execute)
        sa.event.remove(database.engine, "rollback", on_rollback)


def test_posts_run_in_order_each_with_its_own_context(endpoint: Any) -> None:
    a, b = make_ctxt("p1"), make_ctxt("p2")
    ops = [post(a, "q1", 1), post(b, "q1", "other project"), post(a, "q2", 2),
           post(a, "q1", 3)]
    replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert all("result" in r and len(r["result"]) == 1 for r in replies)
    assert bodies(endpoint, a, "q1") == [1, 3]
    assert bodies(endpoint, a, "q2") == [2]
    assert bodies(endpoint, b, "q1") == ["other project"]


def test_posts_to_existing_and_new_queues_in_the_last_run_all_commit(endpoint: Any) -> None:
    """A new queue sends a batch's posts the per-queue way, one queue after
    the other. Only the last queue's post may end the transaction: when the
    first one carried the COMMIT, the next one failed with a 500."""
    ctxt = make_ctxt()
    for queue in ("a1", "a2"):
        endpoint.message_post(ctxt, queue=queue, messages=[{"body": 0, "ttl": 300}],
                              body_size=10)
    replies = endpoint.batch(make_ctxt(""), ops=[post(ctxt, "a1", 1), post(ctxt, "a2", 2),
                                                 post(ctxt, "a2", 3), post(ctxt, "b-new", 4)])
    assert all("result" in reply for reply in replies), replies
    assert [bodies(endpoint, ctxt, queue) for queue in ("a1", "a2", "b-new")] == [
        [0, 1], [0, 2, 3], [4]]


def test_a_failing_operation_does_not_fail_its_neighbours(endpoint: Any, conf: Any,
                                                          database: Any) -> None:
    ctxt = make_ctxt()
    too_big = conf.limits.max_messages_post_size + 1
    ops = [post(ctxt, "q1", "before"),
           post(ctxt, "fresh", "refused", size=too_big),  # BadRequest after its queue upsert
           op_to_wire(ctxt, "message_delete", {"queue": "q1", "message_id": "0" * 32,
                                               "claim_id": "not-an-id"}),
           op_to_wire(ctxt, "no_such_method", {}),
           op_to_wire(ctxt, "_private", {}),
           post(ctxt, "q1", "after")]
    with savepoints_sent(database) as savepoints:
        replies = endpoint.batch(make_ctxt(""), ops=ops)
    # The first run failed; the batch ran again, each group in a savepoint.
    assert savepoints
    assert "result" in replies[0] and "result" in replies[5]
    assert type(error_from_wire(replies[1]["error"])) is errors.BadRequest
    assert type(error_from_wire(replies[2]["error"])) is errors.ClaimMismatch
    assert type(error_from_wire(replies[3]["error"])) is errors.InternalError
    assert type(error_from_wire(replies[4]["error"])) is errors.InternalError
    assert bodies(endpoint, ctxt, "q1") == ["before", "after"]
    # The refused post's savepoint took its lazy queue creation with it.
    assert endpoint.queue_get_metadata(ctxt, queue="fresh") is None


def test_claims_and_deletes_in_one_batch(endpoint: Any) -> None:
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="q", messages=[{"body": i, "ttl": 300} for i in range(4)],
                          body_size=10)
    claim = op_to_wire(ctxt, "claim_create", {"queue": "q", "ttl": 60, "grace": 60,
                                              "limit": 2})
    first, second = endpoint.batch(make_ctxt(""), ops=[claim, claim])
    got = [m["body"] for m in first["result"]["messages"] + second["result"]["messages"]]
    assert got == [0, 1, 2, 3]  # no message in two claims, oldest first
    deletes = [op_to_wire(ctxt, "message_delete", {"queue": "q", "message_id": m["id"],
                                                   "claim_id": r["result"]["claim_id"]})
               for r in (first, second) for m in r["result"]["messages"]]
    # A wrong claim id in the middle fails alone.
    deletes.insert(2, op_to_wire(ctxt, "message_delete", {
        "queue": "q", "message_id": second["result"]["messages"][0]["id"],
        "claim_id": first["result"]["claim_id"]}))
    replies = endpoint.batch(make_ctxt(""), ops=deletes)
    assert type(error_from_wire(replies[2]["error"])) is errors.MessageIsClaimed
    assert all("result" in r for i, r in enumerate(replies) if i != 2)
    assert bodies(endpoint, ctxt, "q") == []


def test_a_batch_that_fails_nowhere_takes_no_savepoint(endpoint: Any, database: Any) -> None:
    """Posts to two queues, claims and deletes: one transaction, no SAVEPOINT
    round trips (they are only paid when an operation fails)."""
    a, b = make_ctxt("p1"), make_ctxt("p2")
    endpoint.message_post(a, queue="q", messages=[{"body": i, "ttl": 300} for i in range(3)],
                          body_size=10)
    claim = op_to_wire(a, "claim_create", {"queue": "q", "ttl": 60, "grace": 60, "limit": 2})
    with savepoints_sent(database) as savepoints:
        replies = endpoint.batch(make_ctxt(""), ops=[
            post(a, "q1", "a1"), post(b, "q1", "b1"), post(a, "q2", "a2"), claim])
    assert savepoints == []
    assert all("result" in r for r in replies)
    claimed = replies[3]["result"]
    assert [m["body"] for m in claimed["messages"]] == [0, 1]
    deletes = [op_to_wire(a, "message_delete", {"queue": "q", "message_id": m["id"],
                                                "claim_id": claimed["claim_id"]})
               for m in claimed["messages"]]
    with savepoints_sent(database) as savepoints:
        replies = endpoint.batch(make_ctxt(""), ops=[*deletes, post(a, "q", "new")])
    assert savepoints == []
    assert all("result" in r for r in replies)
    assert bodies(endpoint, a, "q") == [2, "new"]
    assert bodies(endpoint, a, "q1") == ["a1"] and bodies(endpoint, b, "q1") == ["b1"]
    assert bodies(endpoint, a, "q2") == ["a2"]


def test_a_batch_whose_rollback_fails_answers_503_never_500(endpoint: Any,
                                                            database: Any) -> None:
    """The optimistic run fails in the middle (a statement's connection is in
    trouble), and rolling it back fails too: no operation may be answered
    with the 'earlier write failed' placeholder, a 500 -- what did not commit
    is a 503, a client's error stays what it is."""
    ctxt = make_ctxt()
    endpoint.message_post(ctxt, queue="q2", messages=[{"body": 0, "ttl": 300}], body_size=10)
    message_id = endpoint.message_list(ctxt, queue="q2", limit=1, echo=True)["messages"][0]["id"]
    ops = [post(ctxt, "q1", "a"),
           op_to_wire(ctxt, "message_delete", {"queue": "q2", "message_id": message_id,
                                               "claim_id": None}),
           op_to_wire(ctxt, "message_delete", {"queue": "q3", "message_id": "0" * 32,
                                               "claim_id": "not-an-id"}),
           post(ctxt, "q4", "b")]
    with failing(database, deletes=1, rollbacks=1) as left:
        replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert left == {"delete": 0, "rollback": 0}
    outcomes = [type(error_from_wire(r["error"])) for r in replies]
    assert outcomes == [errors.ServiceUnavailable, errors.ServiceUnavailable,
                        errors.ClaimMismatch, errors.ServiceUnavailable]
    assert bodies(endpoint, ctxt, "q1") == [] and bodies(endpoint, ctxt, "q4") == []
    assert bodies(endpoint, ctxt, "q2") == [0]


def test_rows_leased_to_a_local_dispatcher_are_handed_over_only_once_committed(
        endpoint: Any, database: Any) -> None:
    """A dispatcher of this process listens on this database: a post's
    outbox rows go in leased to it and reach it after the commit -- those of
    the committed run only, never those of an optimistic run rolled back."""
    ctxt = make_ctxt()
    endpoint.subscription_create(ctxt, queue="q1", subscriber="http://127.0.0.1:9/hook",
                                 ttl=None, options=None)
    # This worker learns that q1's posts have notifier rows to write: else
    # the batch's first run would fail on that (post_caches.STAGE_WORK_SECONDS)
    # before it reaches the failing delete.
    endpoint.message_post(ctxt, queue="q1", messages=[{"body": 0, "ttl": 300}], body_size=10)
    earlier = {row.seq for row in outbox.OutboxController(database).rows()}
    endpoint.message_post(ctxt, queue="zz", messages=[{"body": 0, "ttl": 300}], body_size=10)
    message_id = endpoint.message_list(ctxt, queue="zz", limit=1, echo=True)["messages"][0]["id"]
    listener = database.wiring.outbox.listen(lambda: None, "local-dispatcher", database.engine)
    try:
        with failing(database, deletes=1), savepoints_sent(database) as savepoints:
            replies = endpoint.batch(make_ctxt(""), ops=[
                post(ctxt, "q1", "before"),
                # After q1's posts (sorted by queue): a write that fails, so
                # the batch runs again, each group in a savepoint.
                op_to_wire(ctxt, "message_delete", {"queue": "zz", "message_id": message_id,
                                                    "claim_id": None}),
                post(ctxt, "q1", "after")])
        handed = listener.take_rows()
    finally:
        database.wiring.outbox.unlisten(listener)
    assert savepoints and all("result" in reply for reply in replies)
    stored = {row.seq: row for row in outbox.OutboxController(database).rows()
              if row.seq not in earlier}
    assert sorted(row.seq for row in handed) == sorted(stored)
    assert [json.loads(row.payload)["body"] for row in handed] == ["before", "after"]
    assert {(row.lease_owner, row.alive) for row in handed} == {("local-dispatcher", True)}
    assert {row.lease_owner for row in stored.values()} == {"local-dispatcher"}
    # Nobody listening: rows go in unleased, for whoever leases them.
    endpoint.batch(make_ctxt(""), ops=[post(ctxt, "q1", "later")])
    later = [row for row in outbox.OutboxController(database).rows()
             if row.seq not in stored and row.seq not in earlier]
    assert [(row.lease_owner, row.leased_until) for row in later] == [(None, None)]


def test_reads_and_other_writes_interleave_in_order(endpoint: Any) -> None:
    ctxt = make_ctxt()
    ops = [op_to_wire(ctxt, "queue_create", {"queue": "q", "metadata": {"k": 1}}),
           post(ctxt, "q", "x"),
           op_to_wire(ctxt, "queue_stats", {"queue": "q"}),
           op_to_wire(ctxt, "queue_delete", {"queue": "q"}),
           op_to_wire(ctxt, "queue_get_metadata", {"queue": "q"})]
    replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert replies[0] == {"result": True}
    assert replies[2]["result"]["total"] == 1
    assert replies[4] == {"result": None}


@pytest.mark.parametrize("claimed", ["a-work", "z-work"])
def test_posts_that_find_subscribers_start_over_without_a_failed_statement(
        endpoint: Any, database: Any, claimed: str) -> None:
    """A worker's first posts to a queue with a subscriber skip the pipeline
    stages and find out from their INSERT, which then inserts nothing rather
    than failing (a failed statement is an ERROR in PostgreSQL's log). In a
    batch, a claim written before ("a-work": the batch runs in queue order)
    or after the posts must take its message exactly once, and the posts be
    stored once, with their notifications."""
    ctxt = make_ctxt()
    for queue in ("notified", claimed):
        endpoint.queue_create(ctxt, queue=queue, metadata=None)
    endpoint.message_post(ctxt, queue=claimed, messages=[{"body": "job", "ttl": 300}],
                          body_size=3, client_id=ctxt.client_id)
    endpoint.subscription_create(ctxt, queue="notified", subscriber="http://127.0.0.1:9/hook",
                                 ttl=None, options=None)
    failed: list[str] = []
    sa.event.listen(database.engine, "handle_error",
                    lambda context: failed.append(str(context.original_exception)))
    claim = op_to_wire(ctxt, "claim_create", {"queue": claimed, "ttl": 60, "grace": 60,
                                              "limit": 5})
    replies = endpoint.batch(make_ctxt(""), ops=[post(ctxt, "notified", 1),
                                                 post(ctxt, "notified", 2), claim])
    assert all("result" in reply for reply in replies), replies
    assert len(replies[2]["result"]["messages"]) == 1
    stats = endpoint.queue_stats(ctxt, queue=claimed)
    assert (stats["claimed"], stats["total"]) == (1, 1), stats
    assert bodies(endpoint, ctxt, "notified") == [1, 2]
    assert failed == []
    assert len(outbox.OutboxController(database).rows()) == 2

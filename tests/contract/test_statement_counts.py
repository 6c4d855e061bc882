"""SQL statements per storage operation (issue 5: no N+1 queries, a claim is one statement).

Every statement a storage operation sends to the database is counted with
SQLAlchemy's ``before_cursor_execute`` event, on SQLite and PostgreSQL.
The counts are the hot paths' budget: a change that adds a round trip per
request (or per message) fails here, and the constants below are the ones
docs/performance.md quotes. Transaction control (``BEGIN``, ``COMMIT``,
savepoints of a coalesced batch) is not counted; neither is the pool's
connection check, which only runs on connections idle for a while
(``herald.storage.engine``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database
from herald.storage.outbox import Delivered, OutboxController
from tests.contract.conftest import make_ctxt

# (SQLite, PostgreSQL) statements per operation on a queue without a DLQ.
# SQLite has no data-modifying CTEs, so its claim writes its claim row and
# history with statements of their own; it is in-process, so a statement
# there is a function call, not a network round trip.
EXPECTED = {
    # A post checks its messages against the queue's metadata as this worker
    # last saw it, reads the subscribers, then locks the queue row, confirms
    # the metadata and inserts: the lock is taken last. On PostgreSQL that
    # is one statement (herald.storage.locked_insert), a transaction by
    # itself, which also checks that the queue has no subscriber instead of
    # reading them.
    "post_1": (3, 1),           # subscribers + queue row (locked) + messages
    "post_1_first": (4, 2),     # this worker's first post to the queue: + metadata read
    "post_10": (3, 1),          # same: ONE insert for the 10 messages
    # With a subscriber: + the outbox rows' INSERT. On PostgreSQL the
    # subscribers are read again, and the statement checks no guard, once
    # the worker has found the queue has some: the first post finds it out
    # by a statement that inserted nothing (it does not fail: PostgreSQL
    # would log an ERROR), then takes the per-queue path (metadata read and
    # locked, messages, subscribers, outbox).
    "post_1_subscribed": (4, 3),
    "post_1_subscribed_first": (4, 5),
    "list": (1, 1),
    "get": (1, 1),
    "claim": (3, 1),            # PG: one UPDATE ... RETURNING (claim row, history in CTEs)
    "claim_empty": (2, 2),      # nothing claimable: the UPDATE + a queue metadata read
    "claim_get": (1, 1),
    "delete_with_claim": (1, 1),
    "delete_refused": (2, 2),   # nothing deleted: one read to tell 403 from 400
    "pop": (1, 1),
    # The outbox dispatcher: a lease (its subscriptions' liveness comes with
    # the leased rows) and the record of a group of deliveries (outbox rows,
    # delivery history, the subscription's statistics), whatever the rows.
    "lease": (1, 1),
    "record_deliveries": (3, 3),
}


class StatementCounter:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _on_execute(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                    context: Any, executemany: bool) -> None:
        # SQLite's BEGIN [IMMEDIATE] is sent as a statement by our begin hook;
        # on PostgreSQL the driver sends it by itself. Neither is counted.
        if not statement.lstrip().upper().startswith("BEGIN"):
            self.statements.append(statement)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements = []
        sa.event.listen(self.engine, "before_cursor_execute", self._on_execute)
        try:
            yield self.statements
        finally:
            sa.event.remove(self.engine, "before_cursor_execute", self._on_execute)


def _is_recipient_read(statement: str) -> bool:
    """The notifier's read of the posted queues' subscription versions (and
    subscriptions, where they changed): ``herald.storage.recipients``."""
    return "FROM subscription_versions" in statement and "JOIN subscriptions" in statement


def _expected(database: Database, name: str) -> int:
    sqlite_count, pg_count = EXPECTED[name]
    return pg_count if database.is_postgres else sqlite_count


@pytest.fixture
def counter(database: Database) -> StatementCounter:
    return StatementCounter(database.engine)


def _post(endpoint: StorageEndpoint, ctxt: Any, queue: str, n: int) -> list[str]:
    return endpoint.message_post(ctxt, queue=queue,
                                 messages=[{"body": {"i": i}, "ttl": 300} for i in range(n)],
                                 body_size=20 * n)


def _check(counter_list: list[str], database: Database, name: str) -> None:
    expected = _expected(database, name)
    assert len(counter_list) == expected, (
        f"{name}: {len(counter_list)} statements, expected {expected}:\n"
        + "\n---\n".join(counter_list))


def _check_post(counter: StatementCounter, endpoint: StorageEndpoint, database: Database,
                ctxt: Any, n: int, name: str) -> list[str]:
    """Post ``n`` messages to queue q; its statements must be ``name``'s."""
    with counter.counting() as statements:
        _post(endpoint, ctxt, "q", n)
    _check(statements, database, name)
    return statements


def test_post_statements(endpoint: StorageEndpoint, database: Database,
                         counter: StatementCounter) -> None:
    ctxt = make_ctxt()
    endpoint.queue_create(ctxt, queue="q")
    _check_post(counter, endpoint, database, ctxt, 1, "post_1_first")
    _check_post(counter, endpoint, database, ctxt, 1, "post_1")
    statements = _check_post(counter, endpoint, database, ctxt, 10, "post_10")
    assert sum("INSERT INTO messages" in s for s in statements) == 1


def test_post_statements_with_a_subscriber(endpoint: StorageEndpoint, database: Database,
                                          counter: StatementCounter) -> None:
    ctxt = make_ctxt()
    endpoint.queue_create(ctxt, queue="q")
    _post(endpoint, ctxt, "q", 1)  # the queue's metadata is known
    endpoint.subscription_create(ctxt, queue="q", subscriber="http://127.0.0.1:9/hook",
                                 ttl=None, options=None)
    failed: list[str] = []
    sa.event.listen(database.engine, "handle_error",
                    lambda context: failed.append(str(context.original_exception)))
    _check_post(counter, endpoint, database, ctxt, 1, "post_1_subscribed_first")
    _check_post(counter, endpoint, database, ctxt, 1, "post_1_subscribed")
    assert len(OutboxController(database).rows()) == 2
    # No statement failed on the way: the database logged no ERROR.
    assert failed == []


def test_read_statements(endpoint: StorageEndpoint, database: Database,
                         counter: StatementCounter) -> None:
    ctxt = make_ctxt()
    ids = _post(endpoint, ctxt, "q", 10)
    with counter.counting() as statements:
        page = endpoint.message_list(ctxt, queue="q", limit=10, echo=True)
    assert len(page["messages"]) == 10
    _check(statements, database, "list")
    with counter.counting() as statements:
        endpoint.message_get(ctxt, queue="q", message_id=ids[3])
    _check(statements, database, "get")


def test_claim_and_delete_statements(endpoint: StorageEndpoint, database: Database,
                                     counter: StatementCounter) -> None:
    ctxt = make_ctxt()
    _post(endpoint, ctxt, "q", 10)
    with counter.counting() as statements:
        claim = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=5)
    assert len(claim["messages"]) == 5
    _check(statements, database, "claim")
    with counter.counting() as statements:
        got = endpoint.claim_get(ctxt, queue="q", claim_id=claim["claim_id"])
    assert [m["id"] for m in got["messages"]] == [m["id"] for m in claim["messages"]]
    _check(statements, database, "claim_get")
    with counter.counting() as statements:
        endpoint.message_delete(ctxt, queue="q", message_id=claim["messages"][0]["id"],
                                claim_id=claim["claim_id"])
    _check(statements, database, "delete_with_claim")
    with counter.counting() as statements, pytest.raises(Exception, match="claimed"):
        endpoint.message_delete(ctxt, queue="q", message_id=claim["messages"][1]["id"])
    _check(statements, database, "delete_refused")
    with counter.counting() as statements:
        popped = endpoint.message_pop(ctxt, queue="q", limit=5)
    assert len(popped) == 5
    _check(statements, database, "pop")
    with counter.counting() as statements:
        empty = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=5)
    assert empty["messages"] == []
    _check(statements, database, "claim_empty")


def test_statements_do_not_grow_with_the_batch(endpoint: StorageEndpoint,
                                               database: Database,
                                               counter: StatementCounter) -> None:
    """No N+1: claiming or listing 20 messages costs what claiming 2 does."""
    ctxt = make_ctxt()
    _post(endpoint, ctxt, "q", 20)
    with counter.counting() as small:
        endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=2)
    with counter.counting() as large:
        endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=18)
    assert len(small) == len(large)


def test_dlq_keys_that_do_not_enable_a_dlq_still_claim(endpoint: StorageEndpoint,
                                                      database: Database,
                                                      counter: StatementCounter) -> None:
    """The fast path's text test is conservative: a queue naming both DLQ
    keys without enabling the DLQ (semantics.md §7: the count is not an int)
    is claimed by the exact path, with the same outcome."""
    ctxt = make_ctxt()
    endpoint.queue_create(ctxt, queue="q", metadata={"_max_claim_count": "2",
                                                     "_dead_letter_queue": "dlq"})
    _post(endpoint, ctxt, "q", 3)
    with counter.counting() as statements:
        claim = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=2)
    assert len(claim["messages"]) == 2
    assert all(m["claim_count"] == 0 for m in claim["messages"])
    assert len(statements) > _expected(database, "claim")


def test_posts_of_a_batch_to_one_queue_are_one_insert(endpoint: StorageEndpoint,
                                                     database: Database, conf: Any,
                                                     counter: StatementCounter) -> None:
    """A coalesced batch: posts to one queue share one INSERT (and one queue
    lock); a refused post keeps its own error; order and ids per post."""
    from herald.common import errors
    from herald.common.rpc.coalescer import error_from_wire, op_to_wire

    a, b = make_ctxt("p1"), make_ctxt("p1")
    too_big = conf.limits.max_messages_post_size + 1

    def post(ctxt: Any, queue: str, bodies: list[Any], size: int = 10) -> dict[str, Any]:
        return op_to_wire(ctxt, "message_post", {
            "queue": queue, "body_size": size,
            "messages": [{"body": body, "ttl": 300} for body in bodies]})

    ops = [post(a, "q", [1, 2]), post(b, "q", ["refused"], size=too_big),
           post(b, "q", [3]), post(a, "other", ["o"]), post(a, "q", [4, 5, 6])]
    with counter.counting() as statements:
        replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert [len(r["result"]) for r in replies if "result" in r] == [2, 1, 1, 3]
    assert type(error_from_wire(replies[1]["error"])) is errors.BadRequest
    inserts = [s for s in statements if s.lstrip().startswith("INSERT INTO messages")]
    assert len(inserts) == 2  # one per queue
    listed = endpoint.message_list(a, queue="q", limit=20, echo=True)["messages"]
    assert [m["body"] for m in listed] == [1, 2, 3, 4, 5, 6]
    posted = replies[0]["result"] + replies[2]["result"] + replies[4]["result"]
    assert [m["id"] for m in listed] == posted
    # A group whose posts were all refused leaves nothing, not even its queue.
    replies = endpoint.batch(make_ctxt(""), ops=[post(a, "fresh", ["x"], size=too_big),
                                                 post(b, "fresh", ["y"], size=too_big)])
    assert all("error" in r for r in replies)
    assert endpoint.queue_get_metadata(a, queue="fresh") is None


def test_deletes_of_a_batch_in_one_queue_are_one_statement(endpoint: StorageEndpoint,
                                                           counter: StatementCounter) -> None:
    """A coalesced batch of consumers' deletes: one DELETE for all of them;
    the refused ones keep exactly the outcome a lone delete gives."""
    from herald.common import errors
    from herald.common.rpc.coalescer import error_from_wire, op_to_wire

    ctxt = make_ctxt("p1")
    ids = endpoint.message_post(ctxt, queue="q", body_size=10,
                                messages=[{"body": i, "ttl": 300} for i in range(8)])
    claim = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=5)
    claimed = [m["id"] for m in claim["messages"]]
    assert claimed == ids[:5]

    def delete(message_id: str, claim_id: str | None = None) -> dict[str, Any]:
        args = {"queue": "q", "message_id": message_id}
        if claim_id is not None:
            args["claim_id"] = claim_id
        return op_to_wire(ctxt, "message_delete", args)

    good = [delete(mid, claim["claim_id"]) for mid in claimed[:4]] + [delete(ids[5])]
    with counter.counting() as statements:
        replies = endpoint.batch(make_ctxt(""), ops=good)
    assert replies == [{"result": None}] * 5
    sent = [s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(sent) == 1 and sent[0].lstrip().startswith("DELETE")

    other = endpoint.claim_create(ctxt, queue="q", ttl=60, grace=60, limit=1)
    assert [m["id"] for m in other["messages"]] == [ids[6]]
    replies = endpoint.batch(make_ctxt(""), ops=[
        delete(claimed[4]),                        # claimed, no claim id: 403
        delete(ids[7], claim["claim_id"]),         # not claimed, a claim id: 400
        delete(ids[6], claim["claim_id"]),         # someone else's claim: 403
        delete(ids[0], claim["claim_id"]),         # already gone: 204
        delete("not-an-id"),                       # malformed message id: 204
        delete(ids[7], "not-a-claim-id"),          # malformed claim id: 400
        delete(claimed[4], claim["claim_id"]),     # its own claim: deleted
    ])
    outcomes = [type(error_from_wire(r["error"])) if "error" in r else None for r in replies]
    assert outcomes == [errors.MessageIsClaimed, errors.ClaimMismatch, errors.MessageIsClaimed,
                        None, None, errors.ClaimMismatch, None]
    left = endpoint.message_list(ctxt, queue="q", limit=20, echo=True, include_claimed=True)
    assert [m["id"] for m in left["messages"]] == [ids[6], ids[7]]


def test_reads_open_no_transaction_on_postgresql(database: Database) -> None:
    """A read is its statement alone on PostgreSQL (autocommit: no BEGIN and
    COMMIT round trips around it); writes keep their transaction, on the
    same pooled connections. SQLite reads keep their snapshot transaction."""
    with database.read() as conn:
        reading = conn.connection.driver_connection
        read_autocommit = bool(getattr(reading, "autocommit", False))
        if database.is_sqlite:
            assert reading.in_transaction
    with database.write() as conn:
        write_autocommit = bool(getattr(conn.connection.driver_connection, "autocommit",
                                        False))
    assert read_autocommit is database.is_postgres
    assert write_autocommit is False


def test_posts_of_a_batch_to_several_queues_share_one_lock_and_one_insert(
        endpoint: StorageEndpoint, database: Database, conf: Any,
        counter: StatementCounter) -> None:
    """Posts to several existing queues in one batch: one statement reads
    the queues' metadata, one reads their subscribers (on PostgreSQL: the
    last one checks there are none), one locks the queue rows (last), one
    INSERT takes every message; each queue keeps its order and each post its
    own outcome. A queue that does not exist yet sends the batch the
    per-queue way, which creates it lazily."""
    from herald.common import errors
    from herald.common.rpc.coalescer import error_from_wire, op_to_wire

    a, b = make_ctxt("p1"), make_ctxt("p2")
    for ctxt, queue in ((a, "q1"), (a, "q2"), (b, "q1")):
        endpoint.queue_create(ctxt, queue=queue, metadata=None)
    too_big = conf.limits.max_messages_post_size + 1

    def post(ctxt: Any, queue: str, bodies: list[Any], size: int = 10) -> dict[str, Any]:
        return op_to_wire(ctxt, "message_post", {
            "queue": queue, "body_size": size,
            "messages": [{"body": body, "ttl": 300} for body in bodies]})

    ops = [post(a, "q2", ["a2-1"]), post(b, "q1", ["b1-1", "b1-2"]), post(a, "q1", ["a1-1"]),
           post(a, "q2", ["refused"], size=too_big), post(a, "q1", ["a1-2"]),
           post(a, "q2", ["a2-2"])]
    with counter.counting() as statements:
        replies = endpoint.batch(make_ctxt(""), ops=ops)
    assert type(error_from_wire(replies[3]["error"])) is errors.BadRequest
    assert [len(r["result"]) for i, r in enumerate(replies) if i != 3] == [1, 2, 1, 1, 1]
    sent = [s.lstrip() for s in statements
            if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
    inserts = [s for s in sent if "INSERT INTO messages" in s]
    assert len(inserts) == 1
    subscriber_reads = len([s for s in sent if _is_recipient_read(s)])
    if database.is_postgres:
        # An unlocked read of the metadata, then the queue locks, the check
        # that no queue has subscribers and the INSERT in one statement
        # (locked_insert), whatever the number of queues.
        assert subscriber_reads == 0
        assert len([s for s in sent if s.startswith("SELECT queues.project")]) == 1
        assert len(sent) == 2
        assert "FOR UPDATE" in sent[-1] and "NOT EXISTS (SELECT 1 FROM subscriptions" in sent[-1]
    else:
        assert subscriber_reads == 1
        assert len([s for s in sent if s.startswith("SELECT queues.project")]) == 2
        assert len(sent) == 4  # whatever the number of queues
    assert sent[-1] == inserts[0]  # the queue lock just before it, or in it
    # The next batch to those queues checks its posts against the metadata
    # the locking statement confirmed: no unlocked read any more.
    with counter.counting() as statements:
        again = endpoint.batch(make_ctxt(""),
                               ops=[post(a, "q1", ["a1-3"]), post(b, "q1", ["b1-3"])])
    assert all("result" in r for r in again)
    sent = [s.lstrip() for s in statements
            if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
    if database.is_postgres:
        assert len(sent) == 1  # the queue lock, the checks and the INSERT
        assert sent[0].startswith("WITH ") and "FOR UPDATE" in sent[0]
        assert "INSERT INTO messages" in sent[0]
    else:
        assert _is_recipient_read(sent[0])
        assert len(sent) == 3  # the subscribers, the queue read, the INSERT
        assert sent[1].startswith("SELECT queues.project")
        assert sent[2].startswith("INSERT INTO messages")

    def bodies(ctxt: Any, queue: str) -> list[Any]:
        listed = endpoint.message_list(ctxt, queue=queue, limit=20, echo=True)["messages"]
        return [m["body"] for m in listed]

    assert bodies(a, "q1") == ["a1-1", "a1-2", "a1-3"]
    assert bodies(a, "q2") == ["a2-1", "a2-2"]
    assert bodies(b, "q1") == ["b1-1", "b1-2", "b1-3"]
    listed = endpoint.message_list(a, queue="q1", limit=20, echo=True)["messages"]
    assert [m["id"] for m in listed] == (replies[2]["result"] + replies[4]["result"]
                                         + again[0]["result"])

    # A new queue among them: the per-queue path, which creates it.
    replies = endpoint.batch(make_ctxt(""), ops=[post(a, "q1", ["x"]), post(a, "new", ["y"])])
    assert all("result" in r for r in replies)
    assert bodies(a, "new") == ["y"]


@pytest.mark.parametrize("alone", [False, True], ids=["batch", "lone-post"])
def test_metadata_changed_before_the_lock_sends_the_posts_the_per_queue_way(
        database: Database, conf: Any, alone: bool) -> None:
    """Posts to several queues -- and a post on its own -- read the metadata
    unlocked and lock the queue rows last. If another transaction changed a
    queue's metadata in between, nothing is written that way: the per-queue
    path checks every post again against the new metadata, under the lock."""
    import json

    from herald.common import errors
    from herald.common.rpc.coalescer import error_from_wire, op_to_wire
    from herald.storage.schema import queues

    if not database.is_postgres:
        pytest.skip("SQLite takes its write lock at BEGIN: no other writer gets in between")
    ctxt = make_ctxt("p1")
    changed: list[str] = []

    def shrink_q1_posts(_conf: Any, _wiring: Any) -> Any:
        def stage(conn: Any, batch: Any) -> None:
            if batch.queue == "q1" and not changed:  # once, from another session
                with database.engine.begin() as other:
                    other.execute(sa.update(queues).where(queues.c.name == "q1").values(
                        metadata=json.dumps({"_max_messages_post_size": 50})))
                changed.append(batch.queue)
        return stage

    database.wiring.stages["shrink-q1-posts"] = shrink_q1_posts
    try:
        conf.set_override("message_pipeline", ["notifier", "shrink-q1-posts"], group="storage")
        endpoint = StorageEndpoint(database, conf)
        for queue in ("q1", "q2"):
            endpoint.queue_create(ctxt, queue=queue, metadata=None)
        if alone:
            with pytest.raises(errors.BadRequest):  # the new limit
                endpoint.message_post(ctxt, queue="q1", body_size=100,
                                      messages=[{"body": "q1", "ttl": 300}])
        else:
            replies = endpoint.batch(make_ctxt(""), ops=[
                op_to_wire(ctxt, "message_post", {"queue": queue, "body_size": 100,
                                                  "messages": [{"body": queue, "ttl": 300}]})
                for queue in ("q1", "q2")])
            assert type(error_from_wire(replies[0]["error"])) is errors.BadRequest  # new limit
            assert len(replies[1]["result"]) == 1
    finally:
        conf.clear_override("message_pipeline", group="storage")
        del database.wiring.stages["shrink-q1-posts"]
    assert changed == ["q1"]
    listed = endpoint.message_list(ctxt, queue="q1", limit=10, echo=True)["messages"]
    assert listed == []


def test_dispatcher_statements_do_not_grow_with_the_rows(endpoint: StorageEndpoint,
                                                         database: Database,
                                                         counter: StatementCounter) -> None:
    ctxt = make_ctxt()
    for queue in ("a", "b"):
        endpoint.subscription_create(ctxt, queue=queue, subscriber="http://127.0.0.1:9/x",
                                     ttl=None, options=None)
        _post(endpoint, ctxt, queue, 4)
    box = OutboxController(database)
    with counter.counting() as statements:
        leased = box.lease("w", [(ctxt.project_id, "a"), (ctxt.project_id, "b")], 60, 100)
    _check(statements, database, "lease")
    assert [(row.queue, row.lease_owner) for row in leased] == [("a", "w")] * 4 + [("b", "w")] * 4
    with counter.counting() as statements:
        box.record_deliveries([Delivered(row, 1, 200, 1.0) for row in leased[:4]], "w")
    _check(statements, database, "record_deliveries")
    with counter.counting() as statements:
        assert box.lease("w", [(ctxt.project_id, "a")], 60, 100) == []  # all leased or done
    _check(statements, database, "lease")
    assert [row.state for row in box.rows(queue="a")] == ["delivered"] * 4
    assert [row.state for row in box.rows(queue="b")] == ["pending"] * 4

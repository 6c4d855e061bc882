"""Contract: with pooling, a dead letter lands in its dead-letter queue's own
database (docs/dead-letter-redrive.md, "With pooling"), on SQLite and PostgreSQL.

Two pools, ``pa`` and ``pb``, each the one pool of a flavor (``on-a``,
``on-b``: the ``pooled`` fixture of conftest); the main database is the
endpoint's own. A queue's readers look only in its pool's database (the
main one when unplaced), so a dead letter written anywhere else is lost to
every client. The checks read through the endpoint (what clients see) and
count rows in each database (where they landed, and where nothing may).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from herald.common.context import RequestContext
from herald.storage import dead_letters
from herald.storage.endpoint import StorageEndpoint
from herald.testing.clock import FakeClock
from tests.contract.test_pools import count
from tests.contract.test_redrive import listed
from tests.contract.test_redrive_pools import place, run_to_end

DLQ_METADATA = {"_max_claim_count": 1, "_dead_letter_queue": "dlq"}

#: (source queue on, dead-letter queue on); None: the DLQ does not exist yet
#: (it lives in the main database once created).
ACROSS = [("pa", "pb"), ("pa", "main"), ("pa", None), ("main", "pb")]
ALONGSIDE = [("pa", "pa"), ("main", "main")]


def flavored(where: str) -> dict[str, str]:
    return {} if where == "main" else {"_flavor": f"on-{where[-1]}"}


def over_claim(endpoint: StorageEndpoint, ctxt: RequestContext, source_on: str,
               bodies: list[str], queue: str = "q") -> list[str]:
    """``bodies`` posted to ``queue`` (created on ``source_on``, dead-lettering
    to ``dlq`` after one claim), claimed once and released: the next claim
    dead-letters them."""
    assert endpoint.queue_create(ctxt, queue=queue,
                                 metadata={**DLQ_METADATA, **flavored(source_on)}) is True
    ids = endpoint.message_post(ctxt, queue=queue, body_size=1, messages=[
        {"body": body, "ttl": 600} for body in bodies])
    first = endpoint.claim_create(ctxt, queue=queue, ttl=60, grace=60, limit=len(bodies))
    assert [m["id"] for m in first["messages"]] == ids
    endpoint.claim_delete(ctxt, queue=queue, claim_id=first["claim_id"])
    return ids


def claim(endpoint: StorageEndpoint, ctxt: RequestContext, queue: str,
          limit: int = 20) -> dict[str, Any]:
    return endpoint.claim_create(ctxt, queue=queue, ttl=60, grace=60, limit=limit)


def urls(pool_urls: dict[str, str], database_url: str) -> dict[str, str]:
    return {**pool_urls, "main": database_url}


def rows_of(pool_urls: dict[str, str], database_url: str,
            queue: str) -> dict[str, int]:
    """How many rows of ``queue`` each database holds."""
    return {name: count(url, "messages", queue=queue)
            for name, url in urls(pool_urls, database_url).items()}


def only(where: str, rows: int) -> dict[str, int]:
    return {name: rows if name == where else 0 for name in ("pa", "pb", "main")}


@pytest.mark.parametrize("source_on, dlq_on", ACROSS + ALONGSIDE)
def test_a_dead_letter_is_listed_and_claimed_where_its_dlq_lives(
        pooled: StorageEndpoint, ctxt: RequestContext,
        pool_urls: dict[str, str], database_url: str,
        source_on: str, dlq_on: str | None) -> None:
    place(pooled, ctxt, "dlq", dlq_on)
    ids = over_claim(pooled, ctxt, source_on, ["a", "b"])
    assert claim(pooled, ctxt, "q") == {"claim_id": None, "messages": []}
    # Where the DLQ's readers look, once each, as a same-database move leaves them.
    moved = listed(pooled, ctxt, "dlq")
    assert [(m["id"], m["body"], m["claim_id"], m["claim_count"]) for m in moved] == [
        (ids[0], "a", None, 0), (ids[1], "b", None, 0)]
    assert pooled.message_get(ctxt, queue="dlq", message_id=ids[1])["body"] == "b"
    assert listed(pooled, ctxt, "q") == []
    assert rows_of(pool_urls, database_url, "dlq") == only(dlq_on or "main", 2)
    assert rows_of(pool_urls, database_url, "q") == only(source_on, 0)
    if dlq_on is None:  # created lazily where an unplaced queue lives
        assert pooled.queue_get_metadata(ctxt, queue="dlq") == {}
        assert pooled._pools.catalog.lookup("p1", "dlq") is None
    taken = claim(pooled, ctxt, "dlq")["messages"]
    assert [(m["id"], m["claim_count"]) for m in taken] == [(ids[0], 0), (ids[1], 0)]


@pytest.mark.parametrize("source_on, dlq_on", ACROSS + ALONGSIDE)
def test_a_dead_letter_remembers_its_source_queue(
        pooled: StorageEndpoint, conf: Any, ctxt: RequestContext,
        source_on: str, dlq_on: str | None) -> None:
    """A redrive sends it back when the source lives with the DLQ, and names
    the source among the queues it skipped when not (test_redrive_pools)."""
    place(pooled, ctxt, "dlq", dlq_on)
    ids = over_claim(pooled, ctxt, source_on, ["a", "b"])
    claim(pooled, ctxt, "q")
    task = pooled.queue_redrive(ctxt, queue="dlq")
    if (source_on, dlq_on) in ALONGSIDE:
        assert (task["total"], task["skipped"]) == (2, 0)
        assert run_to_end(pooled, conf, task)["moved"] == 2
        assert [m["id"] for m in listed(pooled, ctxt, "q")] == ids
    else:
        assert (task["total"], task["skipped"], task["skipped_queues"]) == (0, 2, ["q"])
        assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == ids


def test_concurrent_claimers_dead_letter_each_message_once_across_pools(
        pooled: StorageEndpoint, ctxt: RequestContext,
        pool_urls: dict[str, str], database_url: str) -> None:
    place(pooled, ctxt, "dlq", "pb")
    ids = over_claim(pooled, ctxt, "pa", [f"m{i}" for i in range(40)])
    start, failures = threading.Barrier(4), []

    def claimer() -> None:
        start.wait()
        try:
            for _ in range(6):
                assert claim(pooled, ctxt, "q", limit=3)["messages"] == []
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    moved = pooled.message_list(ctxt, queue="dlq", marker=None, limit=100, echo=True,
                                include_claimed=True, include_delayed=True)["messages"]
    assert sorted(m["id"] for m in moved) == sorted(ids)
    assert rows_of(pool_urls, database_url, "dlq") == only("pb", 40)
    assert rows_of(pool_urls, database_url, "q") == only("pa", 0)


def test_a_grouped_dead_letter_keeps_its_group_across_pools(
        pooled: StorageEndpoint, ctxt: RequestContext) -> None:
    """As test_groups' same-database case: the held message does not hold back
    the next of its group in the same claim, and arrives with its group."""
    place(pooled, ctxt, "dlq", "pb")
    assert pooled.queue_create(ctxt, queue="q", metadata={**DLQ_METADATA,
                                                          **flavored("pa")}) is True
    pooled.message_post(ctxt, queue="q", body_size=1, messages=[
        {"body": body, "ttl": 600, "group": "a"} for body in ("a1", "a2")])
    first = claim(pooled, ctxt, "q", limit=1)
    pooled.claim_delete(ctxt, queue="q", claim_id=first["claim_id"])
    assert [m["body"] for m in claim(pooled, ctxt, "q")["messages"]] == ["a2"]
    assert [(m["body"], m["group"]) for m in claim(pooled, ctxt, "dlq")["messages"]] == [
        ("a1", "a")]


# -- a move interrupted between the two databases ---------------------------------


def test_a_dlq_database_failing_leaves_the_message_in_its_source(
        pooled: StorageEndpoint, ctxt: RequestContext, clock: FakeClock,
        pool_urls: dict[str, str], database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    place(pooled, ctxt, "dlq", "pb")
    ids = over_claim(pooled, ctxt, "pa", ["a"])

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise sa.exc.OperationalError("INSERT", None, Exception("connection refused"))

    with monkeypatch.context() as patched:
        patched.setattr(dead_letters, "_insert_copies", unreachable)
        assert claim(pooled, ctxt, "q") == {"claim_id": None, "messages": []}
    # Still in its source (held back for the move), nowhere else.
    assert [m["id"] for m in listed(pooled, ctxt, "q")] == ids
    assert rows_of(pool_urls, database_url, "dlq") == only("pb", 0)
    assert claim(pooled, ctxt, "q")["messages"] == []
    assert rows_of(pool_urls, database_url, "dlq") == only("pb", 0)
    # Once the hold ends, the next claim moves it.
    clock.advance(dead_letters.HOLD_SECONDS + 1)
    assert claim(pooled, ctxt, "q")["messages"] == []
    assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == ids
    assert rows_of(pool_urls, database_url, "q") == only("pa", 0)


def test_a_move_stopped_after_the_dlq_commit_ends_with_one_copy(
        pooled: StorageEndpoint, ctxt: RequestContext, clock: FakeClock,
        pool_urls: dict[str, str], database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At-least-once: between the DLQ's commit and the source's delete the
    message is in both (never in neither); the next move adds no copy."""
    place(pooled, ctxt, "dlq", "pb")
    ids = over_claim(pooled, ctxt, "pa", ["a", "b"])

    def crashed(*args: Any, **kwargs: Any) -> None:
        raise sa.exc.OperationalError("DELETE", None, Exception("server closed the connection"))

    with monkeypatch.context() as patched:
        patched.setattr(dead_letters, "_delete_held", crashed)
        assert claim(pooled, ctxt, "q") == {"claim_id": None, "messages": []}
    assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == ids
    assert [m["id"] for m in listed(pooled, ctxt, "q")] == ids
    clock.advance(dead_letters.HOLD_SECONDS + 1)
    assert claim(pooled, ctxt, "q")["messages"] == []
    assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == ids
    assert rows_of(pool_urls, database_url, "dlq") == only("pb", 2)
    assert rows_of(pool_urls, database_url, "q") == only("pa", 0)


# -- what the claim path pays -------------------------------------------------------


def _catalog_reads(endpoint: Any, run: Any) -> int:
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "catalog" in statement:
            reads.append(statement)

    engine = endpoint._pools.main.engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    return len(reads)


def test_only_a_claim_that_dead_letters_reads_the_catalog_again(
        pooled: StorageEndpoint, ctxt: RequestContext) -> None:
    place(pooled, ctxt, "dlq", "pb")
    over_claim(pooled, ctxt, "pa", ["a"])
    pooled.message_post(ctxt, queue="q", body_size=1, messages=[{"body": "b", "ttl": 600}])
    # The routing's one read, as for any claim; then one for the DLQ's placement.
    assert _catalog_reads(pooled, lambda: claim(pooled, ctxt, "q", limit=1)) == 2
    assert _catalog_reads(pooled, lambda: claim(pooled, ctxt, "q", limit=1)) == 1


def test_without_pooling_placements_are_not_consulted(
        endpoint: StorageEndpoint, ctxt: RequestContext,
        database_url: str) -> None:
    """Pooling off (after it was on): every queue lives in the one database,
    whatever the catalog still says, and a claim never reads it."""
    from herald.storage.pool_catalog import catalog

    with endpoint._pools.main.write() as conn:
        conn.execute(sa.insert(catalog), [{"project": "p1", "queue": queue, "pool": "pb"}
                                          for queue in ("dlq", "q")])
    ids = over_claim(endpoint, ctxt, "main", ["a"])
    assert _catalog_reads(endpoint, lambda: claim(endpoint, ctxt, "q")) == 0
    assert [m["id"] for m in listed(endpoint, ctxt, "dlq")] == ids
    assert count(database_url, "messages", queue="dlq") == 1

"""Contract: with pooling, a redrive never writes a message where its queue
does not live (docs/dead-letter-redrive.md), on SQLite and PostgreSQL.

Two pools, ``pa`` and ``pb``, each the one pool of a flavor (``on-a``,
``on-b``: conftest's ``pooled``); the dead-letter queue and its sources start
on ``pa``. A queue's readers look only in its pool's database (the main one
when unplaced), so a message inserted into ``pa``'s database under a queue
living elsewhere is lost to every client. The checks read through the
endpoint (what clients see) and count rows in the pools' databases (where
nothing may land).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from herald.common import errors
from herald.common.context import RequestContext
from herald.storage.endpoint import StorageEndpoint
from herald.storage.pool_catalog import catalog
from herald.storage.redrive import RedriveController
from herald.storage.redrive_runner import RedriveRunner
from herald.testing.polling import wait_until
from tests.contract.conftest import make_ctxt
from tests.contract.test_pools import count
from tests.contract.test_redrive import dead_letter, listed


@pytest.fixture
def ctxt() -> RequestContext:
    return make_ctxt("p1")


def place(endpoint: StorageEndpoint, ctxt: RequestContext, queue: str,
          where: str | None) -> None:
    """Create ``queue`` on pool ``pa``/``pb``, in the main database
    (``"main"``), or leave it absent (None: lives in the main database once
    created, as every unplaced queue)."""
    if where is None:
        return
    metadata = {} if where == "main" else {"_flavor": f"on-{where[-1]}"}
    assert endpoint.queue_create(ctxt, queue=queue, metadata=metadata) is True


def move_to(endpoint: StorageEndpoint, ctxt: RequestContext, queue: str, where: str) -> None:
    """Delete ``queue`` and create it again on ``where``: its placement changes."""
    endpoint.queue_delete(ctxt, queue=queue)
    place(endpoint, ctxt, queue, where)


def dead_letter_on(endpoint: StorageEndpoint, ctxt: RequestContext, where: str, queue: str,
                   bodies: list[str]) -> list[str]:
    """``bodies`` dead-lettered from ``queue`` to ``dlq``, both on ``where``."""
    if endpoint._pools.catalog.lookup(ctxt.project_id, "dlq") is None:
        place(endpoint, ctxt, "dlq", where)
    flavor = {} if where == "main" else {"_flavor": f"on-{where[-1]}"}
    ids = dead_letter(_Flavored(endpoint, flavor), ctxt, queue, bodies)
    assert endpoint._pools.catalog.lookup(ctxt.project_id, queue) == (
        None if where == "main" else where)
    return ids


class _Flavored:
    """``dead_letter``'s endpoint, its queue_create keeping the flavor."""

    def __init__(self, endpoint: StorageEndpoint, flavor: dict[str, str]) -> None:
        self._endpoint, self._flavor = endpoint, flavor

    def queue_create(self, ctxt: RequestContext, queue: str, metadata: dict[str, Any]) -> Any:
        return self._endpoint.queue_create(ctxt, queue=queue, metadata={**metadata,
                                                                        **self._flavor})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._endpoint, name)


def tasks_in(url: str) -> int:
    return count(url, "redrive_tasks")


def run_to_end(endpoint: StorageEndpoint, conf: Any, task: dict[str, Any]) -> dict[str, Any]:
    """Run the task as a worker does (a ``RedriveRunner`` on the router's
    controllers); the task when done."""
    router = endpoint._pools
    runner = RedriveRunner(lambda: [router.controller(RedriveController, db)
                                    for db in router.databases()],
                           conf, "worker-a", lambda p, q: True, router.main.wiring.redrive)
    runner.start()
    try:
        wait_until(lambda: endpoint.queue_redrive_get(make_ctxt("p1"), queue="dlq",
                                                      redrive_id=task["id"])["status"]
                   == "done", timeout=20)
    finally:
        runner.stop()
    return endpoint.queue_redrive_get(make_ctxt("p1"), queue="dlq", redrive_id=task["id"])


# -- an explicit destination ------------------------------------------------------


@pytest.mark.parametrize("dlq_on, destination_on, destination_is, dlq_is", [
    ("pa", "pb", "pool pb", "pool pa"),
    ("pa", "main", "the main database (no pool)", "pool pa"),
    # Not created yet: it would live in the main database once created.
    ("pa", None, "the main database (no pool)", "pool pa"),
    ("main", "pb", "pool pb", "the main database (no pool)"),
])
def test_a_destination_on_another_pool_is_refused_up_front(
        pooled: StorageEndpoint, ctxt: RequestContext, pool_urls: dict[str, str],
        database_url: str, dlq_on: str, destination_on: str | None, destination_is: str,
        dlq_is: str) -> None:
    ids = dead_letter_on(pooled, ctxt, dlq_on, "q", ["a", "b"])
    place(pooled, ctxt, "retry", destination_on)
    with pytest.raises(errors.Conflict) as info:
        pooled.queue_redrive(ctxt, queue="dlq", destination="retry")
    assert info.value.description == (
        f"Queue retry lives on {destination_is} and queue dlq on {dlq_is}: a redrive moves "
        "messages only between queues of the same pool.")
    # No task anywhere, the DLQ as it was, nothing in the destination.
    assert [tasks_in(url) for url in (*pool_urls.values(), database_url)] == [0, 0, 0]
    assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == ids
    assert listed(pooled, ctxt, "retry") == []
    assert count(pool_urls["pa"], "messages", queue="retry") == 0


def test_a_destination_on_the_same_pool_is_redriven(pooled: StorageEndpoint, conf: Any,
                                                    ctxt: RequestContext) -> None:
    ids = dead_letter_on(pooled, ctxt, "pa", "q", ["a", "b"])
    place(pooled, ctxt, "retry", "pa")
    task = pooled.queue_redrive(ctxt, queue="dlq", destination="retry")
    assert (task["total"], task["skipped"], task["skipped_queues"]) == (2, 0, [])
    done = run_to_end(pooled, conf, task)
    assert (done["moved"], done["skipped"]) == (2, 0)
    assert [m["id"] for m in listed(pooled, ctxt, "retry")] == ids
    assert listed(pooled, ctxt, "dlq") == []


# -- each message back to its source ---------------------------------------------


@pytest.mark.parametrize("q2_now", ["pb", "main", None])
def test_messages_whose_source_lives_elsewhere_stay_in_the_dlq_and_are_reported(
        pooled: StorageEndpoint, conf: Any, ctxt: RequestContext, pool_urls: dict[str, str],
        q2_now: str | None) -> None:
    first = dead_letter_on(pooled, ctxt, "pa", "q1", ["a", "b"])
    second = dead_letter_on(pooled, ctxt, "pa", "q2", ["c", "d", "e"])
    move_to(pooled, ctxt, "q2", q2_now)  # q2 re-created elsewhere (or not at all)
    task = pooled.queue_redrive(ctxt, queue="dlq")
    assert (task["total"], task["skipped"], task["skipped_queues"]) == (2, 3, ["q2"])
    done = run_to_end(pooled, conf, task)
    assert (done["moved"], done["total"], done["skipped"], done["skipped_queues"]) == (
        2, 2, 3, ["q2"])
    # The same pool's source got its messages; the others are still visible in the DLQ.
    assert [m["id"] for m in listed(pooled, ctxt, "q1")] == first
    assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == second
    assert listed(pooled, ctxt, "q2") == []
    assert count(pool_urls["pa"], "messages", queue="q2") == 0


@pytest.mark.parametrize("replaced", ["source", "destination"])
def test_a_queue_placed_elsewhere_while_the_task_runs_is_skipped_from_then_on(
        pooled: StorageEndpoint, conf: Any, ctxt: RequestContext, pool_urls: dict[str, str],
        replaced: str) -> None:
    ids = dead_letter_on(pooled, ctxt, "pa", "q", [f"m{i}" for i in range(4)])
    if replaced == "source":
        task, target = pooled.queue_redrive(ctxt, queue="dlq"), "q"
    else:
        place(pooled, ctxt, "retry", "pa")
        task, target = pooled.queue_redrive(ctxt, queue="dlq", destination="retry"), "retry"
    router = pooled._pools
    tasks = router.controller(RedriveController, router.database("pa"))
    assert tasks.adopt(task["id"], "worker-a", conf.storage.redrive_stale_after)
    assert tasks.move_batch(task["id"], "worker-a", 1) == (1, True)
    move_to(pooled, ctxt, target, "pb")  # its first message went with the old queue
    assert tasks.move_batch(task["id"], "worker-a", 2) == (0, False)
    done = pooled.queue_redrive_get(ctxt, queue="dlq", redrive_id=task["id"])
    assert (done["status"], done["moved"], done["total"], done["skipped"],
            done["skipped_queues"]) == ("done", 1, 1, 3, [target])
    assert [m["id"] for m in listed(pooled, ctxt, "dlq")] == ids[1:]
    assert listed(pooled, ctxt, target) == []
    assert count(pool_urls["pa"], "messages", queue=target) == 0


def test_each_batch_reads_the_catalog_once(pooled: StorageEndpoint, conf: Any,
                                           ctxt: RequestContext) -> None:
    dead_letter_on(pooled, ctxt, "pa", "q1", ["a", "b", "c"])
    dead_letter_on(pooled, ctxt, "pa", "q2", ["d", "e"])
    task = pooled.queue_redrive(ctxt, queue="dlq")
    router = pooled._pools
    tasks = router.controller(RedriveController, router.database("pa"))
    assert tasks.adopt(task["id"], "worker-a", conf.storage.redrive_stale_after)
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "catalog" in statement:
            reads.append(statement)

    sa.event.listen(router.main.engine, "before_cursor_execute", seen)
    try:
        assert tasks.move_batch(task["id"], "worker-a", 100) == (5, False)
    finally:
        sa.event.remove(router.main.engine, "before_cursor_execute", seen)
    assert len(reads) == 1, reads


def test_without_pooling_placements_are_not_consulted(endpoint: StorageEndpoint, conf: Any,
                                                      ctxt: RequestContext) -> None:
    """Pooling off (after it was on): every queue lives in the one database,
    whatever the catalog still says."""
    ids = dead_letter(endpoint, ctxt, "q", ["a", "b"])
    with endpoint._pools.main.write() as conn:
        conn.execute(sa.insert(catalog), [{"project": "p1", "queue": queue, "pool": "pb"}
                                          for queue in ("retry", "q")])
    task = endpoint.queue_redrive(ctxt, queue="dlq", destination="retry")
    assert (task["total"], task["skipped"]) == (2, 0)
    done = run_to_end(endpoint, conf, task)
    assert (done["moved"], done["skipped"], done["skipped_queues"]) == (2, 0, [])
    assert [m["id"] for m in listed(endpoint, ctxt, "retry")] == ids

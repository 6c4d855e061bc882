"""Contract: dead-letter redrive (issue 23, feature 3) on every backend.

The tasks are driven through the endpoint (start, progress) and run by a
real ``RedriveRunner`` thread or, where a worker's death must be placed
exactly, by the controller's own steps (adopt, one batch) as two workers
would take them.
"""

from __future__ import annotations

import threading

import pytest

from herald.common import errors
from herald.storage.redrive import RedriveController
from herald.storage.redrive_runner import RedriveRunner
from herald.testing.polling import wait_until

DLQ_METADATA = {"_max_claim_count": 1, "_dead_letter_queue": "dlq"}


def dead_letter(endpoint, ctxt, queue, bodies):
    """Post ``bodies`` to ``queue`` and get them dead-lettered to ``dlq``."""
    endpoint.queue_create(ctxt, queue=queue, metadata=DLQ_METADATA)
    ids = endpoint.message_post(ctxt, queue=queue, body_size=1, messages=[
        {"body": body, "ttl": 600} for body in bodies])
    claim = endpoint.claim_create(ctxt, queue=queue, ttl=60, grace=60, limit=20)
    endpoint.claim_delete(ctxt, queue=queue, claim_id=claim["claim_id"])
    # Claimed once already: this claim moves them to the DLQ instead.
    assert endpoint.claim_create(ctxt, queue=queue, ttl=60, grace=60, limit=20)["messages"] == []
    return ids


def listed(endpoint, ctxt, queue):
    return endpoint.message_list(ctxt, queue=queue, marker=None, limit=20, echo=True,
                                 include_claimed=True, include_delayed=True)["messages"]


def controllers(endpoint, database):
    """The runner's controllers: the router's (with pooling, they know where
    queues live)."""
    return lambda: [endpoint._pools.controller(RedriveController, database)]


@pytest.fixture
def runner(endpoint, database, conf):
    started = RedriveRunner(controllers(endpoint, database), conf, "worker-a",
                            lambda p, q: True, database.wiring.redrive)
    started.start()
    yield started
    started.stop()


def test_redrive_sends_each_message_back_to_its_source(endpoint, ctxt, runner):
    first = dead_letter(endpoint, ctxt, "q1", ["a", "b"])
    second = dead_letter(endpoint, ctxt, "q2", ["c"])
    assert [m["id"] for m in listed(endpoint, ctxt, "dlq")] == first + second
    task = endpoint.queue_redrive(ctxt, queue="dlq")
    assert (task["status"], task["moved"], task["total"]) == ("running", 0, 3)
    wait_until(lambda: endpoint.queue_redrive_get(ctxt, queue="dlq", redrive_id=task["id"])
               ["status"] == "done", timeout=20)
    done = endpoint.queue_redrive_get(ctxt, queue="dlq", redrive_id=task["id"])
    assert (done["moved"], done["total"]) == (3, 3)
    # Every queue in one database (with pooling: one pool): nothing is skipped.
    assert (done["skipped"], done["skipped_queues"]) == (0, [])
    assert listed(endpoint, ctxt, "dlq") == []
    back = listed(endpoint, ctxt, "q1")
    assert [(m["id"], m["body"], m["claim_count"], m["claim_id"]) for m in back] == [
        (first[0], "a", 0, None), (first[1], "b", 0, None)]
    assert [m["body"] for m in listed(endpoint, ctxt, "q2")] == ["c"]
    # A fresh claim count: claimable again, once, before dead-lettering again.
    assert [m["body"] for m in endpoint.claim_create(ctxt, queue="q1", ttl=60, grace=60,
                                                     limit=5)["messages"]] == ["a", "b"]


def test_destination_and_limit(endpoint, ctxt, runner):
    ids = dead_letter(endpoint, ctxt, "q", ["a", "b", "c"])
    task = endpoint.queue_redrive(ctxt, queue="dlq", destination="retry", limit=2,
                                  max_per_second=500)
    assert (task["total"], task["destination"], task["limit"]) == (2, "retry", 2)
    wait_until(lambda: endpoint.queue_redrive_get(ctxt, queue="dlq", redrive_id=task["id"])
               ["status"] == "done", timeout=20)
    assert [m["id"] for m in listed(endpoint, ctxt, "retry")] == ids[:2]
    assert [m["id"] for m in listed(endpoint, ctxt, "dlq")] == ids[2:]
    assert listed(endpoint, ctxt, "q") == []


def test_one_task_per_queue_at_a_time(endpoint, ctxt):
    dead_letter(endpoint, ctxt, "q", ["a"])
    task = endpoint.queue_redrive(ctxt, queue="dlq")
    with pytest.raises(errors.Conflict) as info:
        endpoint.queue_redrive(ctxt, queue="dlq")
    assert info.value.description == "A redrive of queue dlq is already running."
    with pytest.raises(errors.NotFound):
        endpoint.queue_redrive_get(ctxt, queue="other", redrive_id=task["id"])


def test_a_task_whose_worker_died_resumes_on_another_without_loss_or_duplicate(
        endpoint, ctxt, database, conf, clock):
    ids = dead_letter(endpoint, ctxt, "q", [f"m{i}" for i in range(7)])
    task = endpoint.queue_redrive(ctxt, queue="dlq")
    tasks = RedriveController(database, conf)
    stale = conf.storage.redrive_stale_after
    assert tasks.adopt(task["id"], "worker-a", stale)
    assert tasks.move_batch(task["id"], "worker-a", 3) == (3, True)
    # worker-a dies here. Until its heartbeat is stale nobody takes over.
    assert not tasks.adopt(task["id"], "worker-b", stale)
    clock.advance(stale + 1)
    assert [t.id for t in tasks.orphans(stale)] == [task["id"]]
    assert tasks.adopt(task["id"], "worker-b", stale)
    # A worker-a that was only slow cannot move anything any more.
    assert tasks.move_batch(task["id"], "worker-a", 3) == (0, False)
    assert tasks.move_batch(task["id"], "worker-b", 3) == (3, True)
    assert tasks.move_batch(task["id"], "worker-b", 3) == (1, False)
    done = endpoint.queue_redrive_get(ctxt, queue="dlq", redrive_id=task["id"])
    assert (done["status"], done["moved"], done["total"]) == ("done", 7, 7)
    assert [m["id"] for m in listed(endpoint, ctxt, "q")] == ids
    assert listed(endpoint, ctxt, "dlq") == []
    # Done: a new redrive may start.
    assert endpoint.queue_redrive(ctxt, queue="dlq")["total"] == 0


def test_a_stopping_worker_gives_its_task_up(endpoint, ctxt, database, conf):
    dead_letter(endpoint, ctxt, "q", [f"m{i}" for i in range(4)])
    task = endpoint.queue_redrive(ctxt, queue="dlq", max_per_second=1)
    runner = RedriveRunner(controllers(endpoint, database), conf, "worker-a",
                           lambda p, q: True, threading.Event())
    runner.start()
    wait_until(lambda: endpoint.queue_redrive_get(ctxt, queue="dlq", redrive_id=task["id"])
               ["moved"] >= 1, timeout=20)
    runner.stop()
    tasks = RedriveController(database, conf)
    assert [t.owner for t in tasks.orphans(conf.storage.redrive_stale_after)] == [None]

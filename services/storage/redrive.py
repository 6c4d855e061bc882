"""Dead-letter redrive: the tasks that move a dead-letter queue's messages back.

``start`` records a task (``redrive_tasks``) and answers at once; a storage
worker's ``RedriveRunner`` (``redrive_runner``) then moves the messages in
batches, each batch ONE transaction that locks the task row, deletes the
batch from the dead-letter queue, inserts it into its destination and
counts it in the task. A worker killed mid-way loses at most a transaction
that never committed: every message is in exactly one queue, counted once,
and another worker adopts the task (``adopt``) and carries on from there.

What moves: the live messages the dead-letter queue held when the task
started (positions up to ``upto_seq``), oldest first, up to ``limit``. Each
goes to ``destination`` or, by default, to the queue it was dead-lettered
from (``messages.source_queue``, set by ``claims``; messages posted straight
to the dead-letter queue have none and stay). A moved message keeps its id,
body, group, poster and creation time; it arrives at the destination's end,
unclaimed, visible, with a fresh claim count and its TTL restarted.

One running task per queue: a partial unique index (migration 0008) makes
the database refuse a second, which is ``Conflict`` (409). Must not decide
which worker runs a task (the runner does, by tooz's ring) nor validate
requests (the edges do).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import exc as sa_exc

from herald.common import errors, ids, timeutils
from herald.storage import base, clock
from herald.storage.engine import Database
from herald.storage.schema import messages, redrive_tasks

RUNNING, DONE = "running", "done"


class RedriveController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts) -> None:
        self._db = db
        self._conf = conf

    # -- the operations ---------------------------------------------------------

    def start(self, project: str, queue: str, destination: str | None = None,
              max_per_second: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """Record a running task for the dead-letter queue ``queue``; raises
        Conflict while another one runs."""
        now = clock.now()
        task_id = ids.new_id()
        try:
            with self._db.write() as conn:
                self._refuse_running(conn, project, queue)
                upto, count = conn.execute(
                    sa.select(sa.func.max(messages.c.seq), sa.func.count())
                    .where(*_movable(project, queue, destination is None, now))).one()
                total = min(count, limit) if limit is not None else count
                conn.execute(sa.insert(redrive_tasks).values(
                    id=task_id, project=project, queue=queue, destination=destination,
                    max_per_second=max_per_second, max_messages=limit, upto_seq=upto or 0,
                    total=total, moved=0, status=RUNNING, created=now, updated=now))
        except sa_exc.IntegrityError:
            # A concurrent start won the race for the unique running row.
            raise _conflict(queue) from None
        # This process's runner looks for work now, not at its next round.
        self._db.after_commit(self._db.wiring.redrive.set)
        # As inserted, not read back: a runner may already have moved some.
        return _shown({"id": task_id, "status": RUNNING, "moved": 0, "total": total,
                       "destination": destination, "max_per_second": max_per_second,
                       "max_messages": limit, "created": now, "updated": now})

    def get(self, project: str, queue: str, task_id: str) -> dict[str, Any]:
        """The task as the edges show it; raises NotFound."""
        if not ids.is_valid_id(task_id):
            raise _not_found(task_id, queue)
        with self._db.read() as conn:
            row = conn.execute(sa.select(redrive_tasks).where(
                redrive_tasks.c.id == task_id, redrive_tasks.c.project == project,
                redrive_tasks.c.queue == queue)).first()
        if row is None:
            raise _not_found(task_id, queue)
        return _shown(row._mapping)

    @staticmethod
    def _refuse_running(conn: sa.Connection, project: str, queue: str) -> None:
        running = conn.execute(sa.select(redrive_tasks.c.id).where(
            redrive_tasks.c.project == project, redrive_tasks.c.queue == queue,
            redrive_tasks.c.status == RUNNING)).first()
        if running is not None:
            raise _conflict(queue)

    # -- what the runner calls ----------------------------------------------------

    def orphans(self, stale_after: float) -> list[Any]:
        """Running tasks nobody runs: never adopted, or whose runner's
        heartbeat is older than ``stale_after`` seconds."""
        now = clock.now()
        with self._db.read() as conn:
            return list(conn.execute(
                sa.select(redrive_tasks.c.id, redrive_tasks.c.project, redrive_tasks.c.queue,
                          redrive_tasks.c.owner, redrive_tasks.c.heartbeat)
                .where(redrive_tasks.c.status == RUNNING,
                       sa.or_(redrive_tasks.c.heartbeat.is_(None),
                              redrive_tasks.c.heartbeat < now - stale_after))
                .order_by(redrive_tasks.c.created)).all())

    def adopt(self, task_id: str, member: str, stale_after: float) -> bool:
        """Become the task's runner if it is still an orphan (the database
        arbitrates: of two workers adopting at once, one row update wins)."""
        now = clock.now()
        with self._db.write() as conn:
            return bool(conn.execute(
                sa.update(redrive_tasks)
                .where(redrive_tasks.c.id == task_id, redrive_tasks.c.status == RUNNING,
                       sa.or_(redrive_tasks.c.heartbeat.is_(None),
                              redrive_tasks.c.heartbeat < now - stale_after))
                .values(owner=member, heartbeat=now)).rowcount)

    def release(self, task_id: str, member: str) -> None:
        """Give the task up (a worker stopping): another adopts it at once."""
        with self._db.write() as conn:
            conn.execute(sa.update(redrive_tasks)
                         .where(redrive_tasks.c.id == task_id,
                                redrive_tasks.c.owner == member)
                         .values(owner=None, heartbeat=None))

    def move_batch(self, task_id: str, member: str, size: int) -> tuple[int, bool]:
        """Move up to ``size`` messages in one transaction: (moved now, the
        task goes on). Moves nothing, and the task does not go on for this
        member, when another member adopted it meanwhile."""
        now = clock.now()
        woken: set[str] = set()
        with self._db.write() as conn:
            task = conn.execute(sa.select(redrive_tasks)
                                .where(redrive_tasks.c.id == task_id)
                                .with_for_update()).first()
            if task is None or task.status != RUNNING or task.owner != member:
                return 0, False
            wanted = min(size, task.total - task.moved)
            rows = [] if wanted <= 0 else conn.execute(
                sa.select(*messages.c)
                .where(*_movable(task.project, task.queue, task.destination is None, now),
                       messages.c.seq <= task.upto_seq)
                .order_by(messages.c.seq).limit(wanted)
                # Not SKIP LOCKED: a row a claim holds locked is waited for,
                # not left behind by a task that then reports itself done.
                .with_for_update(of=messages)).all()
            if rows:
                woken = self._move(conn, task, rows, now)
            moved = task.moved + len(rows)
            done = not rows or moved >= task.total
            conn.execute(sa.update(redrive_tasks).where(redrive_tasks.c.id == task_id).values(
                moved=moved, updated=now, heartbeat=now, status=DONE if done else RUNNING,
                finished=now if done else None))
        for destination in sorted(woken):
            # After the commit: long polls on the destination may claim them.
            self._db.after_commit(lambda d=destination: self._db.wiring.wakeups
                                  .messages_available(task.project, d))
        return len(rows), not done

    @staticmethod
    def _move(conn: sa.Connection, task: Any, rows: list[Any], now: float) -> set[str]:
        by_destination: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            destination = task.destination or row.source_queue
            by_destination.setdefault(destination, []).append({
                "id": row.id, "project": row.project, "queue": destination, "body": row.body,
                "ttl": row.ttl, "created": row.created, "expires": now + row.ttl,
                "visible_at": now, "client_id": row.client_id, "claim_id": None,
                "claim_expires": None, "claim_count": 0, "checksum": row.checksum,
                "group_id": row.group_id, "source_queue": None})
        conn.execute(sa.delete(messages).where(messages.c.seq.in_([row.seq for row in rows])))
        postgres = conn.dialect.name == "postgresql"
        # In (project, name) order, as every poster locks queues (no deadlock).
        for destination in sorted(by_destination):
            base.ensure_queue(conn, task.project, destination, None, now)
            base.queue_metadata(conn, task.project, destination, lock=postgres)
            moved = by_destination[destination]
            base.mark_grouped(conn, moved)
            conn.execute(sa.insert(messages), moved)
        return set(by_destination)


def _movable(project: str, queue: str, by_source: bool,
             now: float) -> list[sa.ColumnElement[bool]]:
    """The dead-letter queue's messages a redrive moves (before its bound)."""
    conditions = [base.in_queue(project, queue), base.live(now)]
    if by_source:
        conditions.append(messages.c.source_queue.is_not(None))
    return conditions


def _shown(task: Any) -> dict[str, Any]:
    """A task row (or its values) as the operations return it."""
    return {"id": task["id"], "status": task["status"], "moved": task["moved"],
            "total": task["total"], "destination": task["destination"],
            "max_per_second": task["max_per_second"], "limit": task["max_messages"],
            "created": timeutils.isotime(task["created"]),
            "updated": timeutils.isotime(task["updated"])}


def _conflict(queue: str) -> errors.Conflict:
    return errors.Conflict(f"A redrive of queue {queue} is already running.")


def _not_found(task_id: str, queue: str) -> errors.NotFound:
    return errors.NotFound(f"Redrive {task_id} does not exist for queue {queue}.")

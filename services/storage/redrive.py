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

With pooling, a queue's messages live in its pool's database and only
there do its readers look, so a redrive moves messages only between queues
of the same database (the task runs on the dead-letter queue's). Where each
queue lives is the ``Placement``'s answer, read from the pool catalog every
time it is asked (``herald.storage.pools.CatalogPlacement``; without pooling
everything is here). An explicit ``destination`` living elsewhere (another
pool; or the main database, the dead-letter queue being on a pool) is
refused up front with ``Conflict`` (409): the request is sound, the two
queues' placement conflicts with it. Without a destination, the messages
whose source queue lives elsewhere stay in the dead-letter queue, counted
in the task's ``skipped`` and named in its ``skipped_queues``; every batch
asks again, just before it moves, for the destinations of the messages it
moves (one catalog read a batch), so a queue placed elsewhere while the task
runs is skipped from then on. No message is ever written where its queue's
readers do not look.

One running task per queue: a partial unique index (migration 0008) makes
the database refuse a second, which is ``Conflict`` (409). Must not decide
which worker runs a task (the runner does, by tooz's ring) nor validate
requests (the edges do), nor read the pool catalog itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any, Protocol

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import exc as sa_exc

from herald.common import errors, ids, timeutils
from herald.storage import base, clock
from herald.storage.engine import Database
from herald.storage.schema import messages, redrive_tasks

LOG = logging.getLogger(__name__)

RUNNING, DONE = "running", "done"


class Placement(Protocol):
    """Where queues live, seen from the controller's database."""

    def here(self) -> str | None:
        """This database's pool; None: the main database."""

    def elsewhere(self, project: str, queues: Collection[str]) -> dict[str, str | None]:
        """Those of ``queues`` living in another database, each with its pool
        (None: the main database)."""


class Unpooled:
    """Without pooling every queue lives in the one database."""

    def here(self) -> str | None:
        return None

    def elsewhere(self, project: str, queues: Collection[str]) -> dict[str, str | None]:
        return {}


class RedriveController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts,
                 placement: Placement | None = None) -> None:
        self._db = db
        self._conf = conf
        self._placement: Placement = placement or Unpooled()

    # -- the operations ---------------------------------------------------------

    def start(self, project: str, queue: str, destination: str | None = None,
              max_per_second: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """Record a running task for the dead-letter queue ``queue``; raises
        Conflict while another one runs, or when ``destination`` lives in
        another database."""
        if destination is not None:
            self._refuse_elsewhere(project, queue, destination)
        now = clock.now()
        task_id = ids.new_id()
        by_source = destination is None
        try:
            with self._db.write() as conn:
                self._refuse_running(conn, project, queue)
                movable = _movable(project, queue, by_source, now)
                upto = _bound(conn, movable, limit)
                counts = dict(conn.execute(
                    sa.select(messages.c.source_queue, sa.func.count())
                    .where(*movable, messages.c.seq <= upto)
                    .group_by(messages.c.source_queue)).all())
                # One catalog read for the sources just counted, so the task
                # reports its skipped messages at once; every batch asks again.
                away = self._placement.elsewhere(project, list(counts)) if by_source else {}
                skipped = sum(counts[source] for source in away)
                total = sum(counts.values()) - skipped
                conn.execute(sa.insert(redrive_tasks).values(
                    id=task_id, project=project, queue=queue, destination=destination,
                    max_per_second=max_per_second, max_messages=limit, upto_seq=upto,
                    total=total, moved=0, skipped=skipped,
                    skipped_queues=_queues_text(set(away)), status=RUNNING, created=now,
                    updated=now))
        except sa_exc.IntegrityError:
            # A concurrent start won the race for the unique running row.
            raise _conflict(queue) from None
        if away:
            LOG.info("redrive %s of %s/%s leaves %d message(s) of %s in the queue: they live "
                     "in another database", task_id, project, queue, skipped, sorted(away))
        # This process's runner looks for work now, not at its next round.
        self._db.after_commit(self._db.wiring.redrive.set)
        # As inserted, not read back: a runner may already have moved some.
        return _shown({"id": task_id, "status": RUNNING, "moved": 0, "total": total,
                       "skipped": skipped, "skipped_queues": _queues_text(set(away)),
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

    def _refuse_elsewhere(self, project: str, queue: str, destination: str) -> None:
        away = self._placement.elsewhere(project, [destination])
        if destination in away:
            raise errors.Conflict(
                f"Queue {destination} lives on {_where(away[destination])} and queue {queue} "
                f"on {_where(self._placement.here())}: a redrive moves messages only between "
                "queues of the same pool.")

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
        member, when another member adopted it meanwhile. Messages whose
        destination lives in another database stay (``skipped``)."""
        now = clock.now()
        woken: set[str] = set()
        with self._db.write() as conn:
            task = conn.execute(sa.select(redrive_tasks)
                                .where(redrive_tasks.c.id == task_id)
                                .with_for_update()).first()
            if task is None or task.status != RUNNING or task.owner != member:
                return 0, False
            skipped_queues = set(json.loads(task.skipped_queues or "[]"))
            wanted = min(size, task.total - task.moved)
            rows = [] if wanted <= 0 else self._next(conn, task, skipped_queues, now, wanted)
            found, total, skipped = bool(rows), task.total, task.skipped
            # Asked for the rows it is about to move, locked: a destination
            # placed elsewhere since the task started is skipped from now on.
            away = self._placement.elsewhere(task.project, {_destination(task, row)
                                                            for row in rows})
            if away:
                left = _count_left(conn, task, set(away), now)
                skipped, total = skipped + left, total - left
                skipped_queues |= set(away)
                rows = [row for row in rows if _destination(task, row) not in away]
                LOG.warning("redrive %s of %s/%s leaves %d message(s) of %s in the queue: "
                            "placed in another database since it started", task_id,
                            task.project, task.queue, left, sorted(away))
            if rows:
                woken = self._move(conn, task, rows, now)
            moved = task.moved + len(rows)
            done = not found or moved >= total
            conn.execute(sa.update(redrive_tasks).where(redrive_tasks.c.id == task_id).values(
                moved=moved, total=total, skipped=skipped,
                skipped_queues=_queues_text(skipped_queues), updated=now, heartbeat=now,
                status=DONE if done else RUNNING, finished=now if done else None))
        for destination in sorted(woken):
            # After the commit: long polls on the destination may claim them.
            self._db.after_commit(lambda d=destination: self._db.wiring.wakeups
                                  .messages_available(task.project, d))
        return len(rows), not done

    @staticmethod
    def _next(conn: sa.Connection, task: Any, skipped_queues: set[str], now: float,
              wanted: int) -> list[Any]:
        """The task's next ``wanted`` messages, oldest first, locked."""
        if task.destination is not None and skipped_queues:
            return []  # its one destination went elsewhere: nothing moves any more
        conditions = [*_movable(task.project, task.queue, task.destination is None, now),
                      messages.c.seq <= task.upto_seq]
        if skipped_queues:
            conditions.append(messages.c.source_queue.not_in(sorted(skipped_queues)))
        return list(conn.execute(
            sa.select(*messages.c).where(*conditions).order_by(messages.c.seq).limit(wanted)
            # Not SKIP LOCKED: a row a claim holds locked is waited for,
            # not left behind by a task that then reports itself done.
            .with_for_update(of=messages)).all())

    @staticmethod
    def _move(conn: sa.Connection, task: Any, rows: list[Any], now: float) -> set[str]:
        by_destination: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            destination = _destination(task, row)
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


def _bound(conn: sa.Connection, movable: list[sa.ColumnElement[bool]],
           limit: int | None) -> int:
    """The position of the last message a new task covers: the newest
    movable one, or with ``limit`` the ``limit``-th oldest (0: none)."""
    if limit is None:
        return conn.execute(sa.select(sa.func.max(messages.c.seq)).where(*movable)).scalar() or 0
    oldest = (sa.select(messages.c.seq).where(*movable).order_by(messages.c.seq)
              .limit(limit).subquery())
    return conn.execute(sa.select(sa.func.max(oldest.c.seq))).scalar() or 0


def _destination(task: Any, row: Any) -> str:
    return str(task.destination or row.source_queue)


def _count_left(conn: sa.Connection, task: Any, away: set[str], now: float) -> int:
    """How many of the task's messages still to move go to ``away``."""
    conditions = [*_movable(task.project, task.queue, task.destination is None, now),
                  messages.c.seq <= task.upto_seq]
    if task.destination is None:
        conditions.append(messages.c.source_queue.in_(sorted(away)))
    return int(conn.execute(sa.select(sa.func.count()).select_from(messages)
                            .where(*conditions)).scalar_one())


def _queues_text(queues: set[str]) -> str | None:
    return json.dumps(sorted(queues)) if queues else None


def _where(pool: str | None) -> str:
    """Where a queue lives, as an error names it."""
    return "the main database (no pool)" if pool is None else f"pool {pool}"


def _shown(task: Any) -> dict[str, Any]:
    """A task row (or its values) as the operations return it."""
    return {"id": task["id"], "status": task["status"], "moved": task["moved"],
            "total": task["total"], "skipped": task["skipped"],
            "skipped_queues": json.loads(task["skipped_queues"] or "[]"),
            "destination": task["destination"],
            "max_per_second": task["max_per_second"], "limit": task["max_messages"],
            "created": timeutils.isotime(task["created"]),
            "updated": timeutils.isotime(task["updated"])}


def _conflict(queue: str) -> errors.Conflict:
    return errors.Conflict(f"A redrive of queue {queue} is already running.")


def _not_found(task_id: str, queue: str) -> errors.NotFound:
    return errors.NotFound(f"Redrive {task_id} does not exist for queue {queue}.")

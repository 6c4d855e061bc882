"""The backlog gauges' measurements: queue depths, oldest ages, outbox backlog.

``BacklogReporter.refresh()`` (the worker's background thread, every
``[metrics] backlog_interval`` seconds) runs two grouped reads per database
-- live messages by queue and state, pending outbox rows by queue -- keeps
what this worker owns in the tooz partition and publishes it on
``herald.common.metrics.backlog.BOARD``, where scrapes read it. The
per-queue series are capped at the cluster's ``[metrics] max_queue_series``
deepest queues: every worker sees every queue in the database, ranks them
all the same way, and reports those of the top it owns, so the whole
cluster reports each of them exactly once. Per-project totals and the
outbox cover every owned queue.

Reads only, outside any transaction that writes; it must not be called on
a request path (a scrape never waits for it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from herald.common import metrics
from herald.common.metrics.backlog import BOARD, QueueBacklog, Snapshot
from herald.storage import base, clock
from herald.storage.engine import Database
from herald.storage.outbox import STATE_PENDING
from herald.storage.schema import messages, outbox


def _queue_rows(conn: sa.Connection, now: float) -> list[Any]:
    claimed = base.claimed(now)
    delayed = sa.and_(sa.not_(claimed), messages.c.visible_at > now)
    return conn.execute(
        sa.select(messages.c.project, messages.c.queue, sa.func.count().label("total"),
                  sa.func.coalesce(sa.func.sum(sa.case((claimed, 1), else_=0)), 0)
                  .label("claimed"),
                  sa.func.coalesce(sa.func.sum(sa.case((delayed, 1), else_=0)), 0)
                  .label("delayed"),
                  sa.func.min(messages.c.created).label("oldest"))
        .where(base.live(now))
        .group_by(messages.c.project, messages.c.queue)
    ).all()


def _outbox_rows(conn: sa.Connection) -> list[Any]:
    return conn.execute(
        sa.select(outbox.c.project, outbox.c.queue, sa.func.count().label("pending"),
                  sa.func.min(outbox.c.created).label("oldest"))
        .where(outbox.c.state == STATE_PENDING)
        .group_by(outbox.c.project, outbox.c.queue)
    ).all()


def _oldest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class BacklogReporter:
    """Measures the databases of one worker and publishes its snapshot."""

    def __init__(self, conf: cfg.ConfigOpts, member_id: str,
                 databases: Callable[[], Iterable[Database]],
                 owns: Callable[[str, str], bool]) -> None:
        self._conf = conf
        self._member_id = member_id
        self._databases = databases
        self._owns = owns
        self._next = 0.0

    def refresh_if_due(self) -> Snapshot | None:
        """``refresh`` once ``backlog_interval`` has passed since the last one
        (at once the first time, so the gauges exist soon after start-up);
        never with metrics off."""
        if not metrics.ENABLED or time.monotonic() < self._next:
            return None
        return self.refresh()

    def refresh(self) -> Snapshot:
        self._next = time.monotonic() + self._conf.metrics.backlog_interval
        now = clock.now()
        queues: list[QueueBacklog] = []
        pending = 0
        pending_oldest: float | None = None
        for db in self._databases():
            with db.read() as conn:
                rows = _queue_rows(conn, now)
                outbox_rows = _outbox_rows(conn)
            for row in rows:
                claimed, delayed = int(row.claimed), int(row.delayed)
                queues.append(QueueBacklog(row.project, row.queue,
                                           int(row.total) - claimed - delayed, claimed,
                                           delayed, row.oldest))
            for row in outbox_rows:
                if self._owns(row.project, row.queue):
                    pending += int(row.pending)
                    pending_oldest = _oldest(pending_oldest, row.oldest)
        # Every worker ranks the same rows the same way: deepest first, then by name.
        queues.sort(key=lambda q: (-q.total, q.project, q.queue))
        owned = [q for q in queues if self._owns(q.project, q.queue)]
        top = {(q.project, q.queue) for q in queues[:self._conf.metrics.max_queue_series]}
        snapshot = Snapshot(queues=[q for q in owned if (q.project, q.queue) in top],
                            projects=_project_totals(owned), outbox_pending=pending,
                            outbox_oldest_created=pending_oldest, measured_at=time.time())
        BOARD.publish(self._member_id, snapshot)
        return snapshot

    def withdraw(self) -> None:
        BOARD.withdraw(self._member_id)


def _project_totals(queues: list[QueueBacklog]) -> list[QueueBacklog]:
    totals: dict[str, QueueBacklog] = {}
    for q in queues:
        t = totals.get(q.project)
        totals[q.project] = dataclasses.replace(q, queue="") if t is None else QueueBacklog(
            q.project, "", t.ready + q.ready, t.claimed + q.claimed, t.delayed + q.delayed,
            _oldest(t.oldest_created, q.oldest_created))
    return list(totals.values())

"""Queue controller: lazy queues, metadata, listing, stats and purge.

Implements semantics.md §2, §8 and §9 storage side: a queue row exists after
an explicit create or a first post; reading a missing queue is not an error
(None / zeros). Stored metadata is returned as stored: filling in the
reserved keys' defaults is the edge's job. Validation of metadata values is
the edge's job too. Subscriptions are the subscription controller's; purge
only delegates to it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Connection

from herald.common import errors
from herald.storage import base, clock
from herald.storage.engine import Database
from herald.storage.schema import claims, messages, queues
from herald.storage.subscriptions import SubscriptionController

# How many rows a metadata-filtered listing reads per round when most queues
# do not match (the filter runs in Python on the decoded JSON, portable
# across SQLite and PostgreSQL).
_FILTER_BATCH = 200


class QueueController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts) -> None:
        self._db = db
        self._conf = conf
        self._subscriptions = SubscriptionController(db, conf)

    def create(self, project: str, queue: str, metadata: dict[str, Any] | None) -> bool:
        with self._db.write() as conn:
            return base.ensure_queue(conn, project, queue, metadata, clock.now())

    def get_metadata(self, project: str, queue: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            return base.queue_metadata(conn, project, queue)

    def set_metadata(self, project: str, queue: str, metadata: dict[str, Any]) -> None:
        with self._db.write() as conn:
            result = conn.execute(
                sa.update(queues)
                .where(queues.c.project == project, queues.c.name == queue)
                .values(metadata=base.dump_metadata(metadata))
            )
            if result.rowcount == 0:
                raise errors.QueueDoesNotExist.of(queue, project)

    def delete(self, project: str, queue: str) -> None:
        with self._db.write() as conn:
            _delete_messages_and_claims(conn, project, queue)
            conn.execute(sa.delete(queues).where(queues.c.project == project,
                                                 queues.c.name == queue))

    def purge(self, project: str, queue: str, resource_types: list[str]) -> None:
        if "messages" in resource_types:
            # All messages, claimed ones included (semantics.md quirk 8: we purge all).
            with self._db.write() as conn:
                _delete_messages_and_claims(conn, project, queue)
        if "subscriptions" in resource_types:
            # All of them, not only a first page (semantics.md quirk 8).
            self._subscriptions.purge(project, queue)

    def list(self, project: str, marker: str | None, limit: int, detailed: bool,
             name: str | None, metadata_filters: dict[str, Any] | None,
             with_count: bool) -> dict[str, Any]:
        filters = metadata_filters or {}
        result: list[dict[str, Any]] = []
        with self._db.read() as conn:
            last = marker
            while len(result) < limit:
                stmt = (sa.select(queues.c.name, queues.c.metadata)
                        .where(queues.c.project == project)
                        .order_by(queues.c.name))
                if last is not None:
                    stmt = stmt.where(queues.c.name > last)
                if name:
                    stmt = stmt.where(queues.c.name.contains(name, autoescape=True))
                batch = limit - len(result) if not filters else _FILTER_BATCH
                rows = conn.execute(stmt.limit(batch)).all()
                for row in rows:
                    meta = base.load_metadata(row.metadata)
                    if any(meta.get(key, _MISSING) != value for key, value in filters.items()):
                        continue
                    item: dict[str, Any] = {"name": row.name}
                    if detailed:
                        item["metadata"] = meta
                    result.append(item)
                    if len(result) == limit:
                        break
                if len(rows) < batch:
                    break
                last = rows[-1].name
            count = None
            if with_count:
                count = conn.execute(
                    sa.select(sa.func.count()).select_from(queues)
                    .where(queues.c.project == project)
                ).scalar_one()
        return {"queues": result, "count": count}

    def stats(self, project: str, queue: str) -> dict[str, Any]:
        now = clock.now()
        in_scope = sa.and_(base.in_queue(project, queue), base.live(now))

        def edge(order: Any) -> Any:
            return (sa.select(messages.c.seq).where(in_scope).order_by(order).limit(1)
                    .scalar_subquery())

        counts = sa.select(
            sa.func.count().label("total"),
            sa.func.coalesce(sa.func.sum(sa.case((base.claimed(now), 1), else_=0)), 0)
            .label("claimed"),
        ).where(in_scope).subquery("counts")
        # One statement, so one snapshot: counts and the oldest/newest rows
        # must agree even while others pop or delete (PostgreSQL's READ
        # COMMITTED gives each statement its own snapshot). The counts row is
        # joined to the oldest and newest messages: no message, one row of
        # NULLs; one message, one row; otherwise two, oldest first.
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(counts.c.total, counts.c.claimed, *base.MESSAGE_COLUMNS)
                .select_from(counts.outerjoin(
                    messages, messages.c.seq.in_([edge(messages.c.seq.asc()),
                                                  edge(messages.c.seq.desc())])))
                .order_by(messages.c.seq)
            ).all()
        total, claimed_count = int(rows[0].total), int(rows[0].claimed)
        stats: dict[str, Any] = {"claimed": claimed_count, "free": total - claimed_count,
                                 "total": total}
        if total and rows[0].id is not None:
            # Whole StoredMessages, as Zaqar's stores return them (body included).
            stats["oldest"] = base.stored_message(rows[0], now)
            stats["newest"] = base.stored_message(rows[-1], now)
        return stats

    def volume(self) -> dict[str, int]:
        """Message totals over every project (for the health report)."""
        now = clock.now()
        with self._db.read() as conn:
            total, claimed_count = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.case((base.claimed(now), 1), else_=0)), 0),
                ).where(base.live(now))
            ).one()
        return {"free": int(total) - int(claimed_count), "claimed": int(claimed_count),
                "total": int(total)}


_MISSING = object()


def _delete_messages_and_claims(conn: Connection, project: str, queue: str) -> None:
    """Every message of the queue, claimed ones included, and its claims."""
    conn.execute(sa.delete(messages).where(base.in_queue(project, queue)))
    conn.execute(sa.delete(claims).where(claims.c.project == project, claims.c.queue == queue))

"""The notification outbox: rows written with the posts, leased by dispatchers.

A row is one delivery to do (one message to one subscriber, or one
confirmation). Its life: ``pending`` -> leased by one dispatcher
(``leased_until``/``lease_owner``) -> ``delivered`` or, after a failed
attempt, ``pending`` again with a later ``next_attempt`` -> ... ->
``failed`` when the retry policy is exhausted. A lease that runs out (the
dispatcher died) makes the row due again: delivery is at-least-once.

A row the notifier writes while a dispatcher of the same process and
database listens goes in already leased to that dispatcher and is handed
to it once the post commits (``herald.storage.outbox_signal``, the
in-process half of the outbox): the first attempt needs no lease
statement, and is not delayed by one. If that worker dies before
delivering, the row waits for its lease to run out, as a leased row
always did.

Otherwise leasing is decided by the database: ``UPDATE ... WHERE seq IN
(SELECT ... FOR UPDATE SKIP LOCKED)`` on PostgreSQL (two dispatchers never
lease one row, neither waits), an immediate write transaction on SQLite.
Which queues a dispatcher asks for comes from the tooz partition ring (the
worker decides); this module never consults tooz. It does not deliver
anything either (``herald.storage.dispatcher``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herald.storage import base, clock, history
from herald.storage.engine import Database
from herald.storage.schema import outbox, subscriptions

KIND_NOTIFICATION = "notification"
KIND_CONFIRMATION = "confirmation"
STATE_PENDING = "pending"
STATE_DELIVERED = "delivered"
STATE_FAILED = "failed"


def row_for(*, project: str, queue: str, subscription: Any, kind: str, payload: str,
            options: dict[str, Any], request_id: str, now: float,
            message_id: str | None = None, lessee: str | None = None,
            lease_seconds: float = 0.0, traceparent: str | None = None) -> dict[str, Any]:
    """The outbox row delivering ``payload`` to ``subscription`` (a row or dict),
    leased to ``lessee`` for ``lease_seconds`` if given; ``traceparent``: the
    span of the post that caused it (tracing on), which its deliveries continue."""
    get = subscription.__getitem__ if isinstance(subscription, dict) else (
        lambda key: getattr(subscription, key))
    return {
        "project": project,
        "queue": queue,
        "subscription_id": get("id"),
        "kind": kind,
        "subscriber": get("subscriber"),
        "subscriber_kind": get("kind"),
        "options": json.dumps(options),
        "payload": payload,
        "request_id": (request_id or "-")[:128],
        "created": now,
        "state": STATE_PENDING,
        "next_attempt": now,
        "leased_until": now + lease_seconds if lessee is not None else None,
        "lease_owner": lessee,
        "attempts": 0,
        "message_id": message_id,
        "traceparent": traceparent or None,
    }


def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """One INSERT for all rows, in the caller's transaction."""
    if rows:
        conn.execute(sa.insert(outbox), rows)


@functools.cache
def _insert_returning_statement() -> sa.Insert:
    return sa.insert(outbox).returning(outbox.c.seq, sort_by_parameter_order=True)


def insert_leased_rows(conn: Connection, rows: list[dict[str, Any]]) -> list[Any]:
    """``insert_rows`` for rows leased to a dispatcher of this process: each
    comes back as ``OutboxController.lease`` would have returned it (its
    ``seq``; ``alive``, the subscription was read in this transaction;
    ``signing``, the caller sets it from that read), for
    ``outbox_signal.DispatchSignal.hand_over`` once the transaction commits."""
    if not rows:
        return []
    seqs = conn.execute(_insert_returning_statement(), rows).scalars().all()
    return [types.SimpleNamespace(**row, seq=seq, alive=True, signing=None)
            for row, seq in zip(rows, seqs, strict=True)]


def _due(now: float | sa.BindParameter[float]) -> sa.ColumnElement[bool]:
    return sa.and_(outbox.c.state == STATE_PENDING, outbox.c.next_attempt <= now,
                   sa.or_(outbox.c.leased_until.is_(None), outbox.c.leased_until <= now))


@functools.cache
def _lease_statement(one_key: bool) -> sa.Update:
    """``OutboxController.lease``'s one statement, built once: due rows of
    the queues (``base.one_of_params``), oldest first, up to ``b_limit``,
    leased to ``b_owner`` until ``b_until``; each returned with ``alive``,
    whether its subscription still exists unexpired, and ``signing``, its
    subscription's signing record as it is now (a rotation since the row was
    written applies to the row's next attempt; the secret is never copied
    into outbox rows). Built per call, the lease spent more CPU in
    SQLAlchemy than in PostgreSQL."""
    now = sa.bindparam("b_now")
    chosen = (sa.select(outbox.c.seq)
              .where(_due(now), base.bound_one_of(outbox.c.project, outbox.c.queue, one_key))
              .order_by(outbox.c.seq)
              .limit(sa.bindparam("b_limit"))
              .with_for_update(skip_locked=True))
    alive = sa.exists().where(subscriptions.c.id == outbox.c.subscription_id,
                              subscriptions.c.expires > now)
    signing = (sa.select(subscriptions.c.signing)
               .where(subscriptions.c.id == outbox.c.subscription_id).scalar_subquery())
    return (sa.update(outbox)
            .where(outbox.c.seq.in_(chosen.scalar_subquery()))
            .values(leased_until=sa.bindparam("b_until"), lease_owner=sa.bindparam("b_owner"))
            .returning(*outbox.c, alive.label("alive"), signing.label("signing")))


@functools.cache
def _delivered_statement() -> sa.Update:
    """Rows ``b_seqs`` still leased to ``b_owner`` marked delivered at
    ``b_now`` after ``b_attempts`` attempts (``record_deliveries``); built once."""
    now = sa.bindparam("b_now")
    return (sa.update(outbox)
            .where(outbox.c.seq.in_(sa.bindparam("b_seqs", expanding=True)),
                   outbox.c.lease_owner == sa.bindparam("b_owner"))
            .values(attempts=sa.bindparam("b_attempts"), last_attempt=now,
                    last_status=sa.bindparam("b_status"), last_error=None,
                    state=STATE_DELIVERED, done_at=now, leased_until=None, lease_owner=None)
            .returning(outbox.c.seq))


@functools.cache
def _delivered_stats_statement() -> sa.Update:
    """``b_count`` successful deliveries at ``b_now`` added to subscription
    ``b_id``'s statistics (``record_deliveries``); built once."""
    count, now = sa.bindparam("b_count"), sa.bindparam("b_now")
    return (sa.update(subscriptions)
            .where(subscriptions.c.id == sa.bindparam("b_id"))
            .values(delivery_attempts=subscriptions.c.delivery_attempts + count,
                    deliveries=subscriptions.c.deliveries + count,
                    last_attempt=now, last_success=now, last_status=sa.bindparam("b_status"),
                    last_error=None, consecutive_failures=0))


@dataclasses.dataclass(frozen=True)
class Delivered:
    """One successful attempt, for ``OutboxController.record_deliveries``."""

    row: Any
    attempts: int
    status: int | None
    latency_ms: float


class OutboxController:
    def __init__(self, db: Database) -> None:
        self._db = db

    def due_queues(self, takeover_after: float) -> list[tuple[str, str, bool]]:
        """``(project, queue, overdue)`` of the queues with due rows; ``overdue``
        when one has waited more than ``takeover_after`` seconds."""
        now = clock.now()
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(outbox.c.project, outbox.c.queue,
                          sa.func.min(outbox.c.next_attempt))
                .where(_due(now))
                .group_by(outbox.c.project, outbox.c.queue)
            ).all()
        return [(r[0], r[1], r[2] <= now - takeover_after) for r in rows]

    def lease(self, owner: str, queues: Sequence[tuple[str, str]], lease_seconds: float,
              limit: int) -> list[Any]:
        """Lease up to ``limit`` due rows of ``queues`` (oldest first); rows of a
        subscription that no longer exists or expired are dropped instead."""
        if not queues:
            return []
        now = clock.now()
        one_key, params = base.one_of_params(queues)
        params.update(b_now=now, b_limit=limit, b_until=now + lease_seconds, b_owner=owner)
        with self._db.write() as conn:
            rows = conn.execute(_lease_statement(one_key), params).all()
            gone = [r.seq for r in rows if not r.alive]
            if gone:
                conn.execute(sa.delete(outbox).where(outbox.c.seq.in_(gone)))
        rows = [r for r in rows if r.alive]
        rows.sort(key=lambda r: r.seq)
        return rows

    def record_attempt(self, row: Any, owner: str, *, delivered: bool, failed: bool,
                       status: int | None, error: str | None,
                       next_attempt: float | None, attempts: int,
                       latency_ms: float = 0.0) -> None:
        """Record one attempt on the row, in the delivery history and in the
        subscription's statistics and health.

        ``delivered``: done. ``failed``: policy exhausted. Otherwise the row
        goes back to pending, due at ``next_attempt`` (or kept leased for an
        immediate retry when ``next_attempt`` is None)."""
        now = clock.now()
        values: dict[str, Any] = {"attempts": attempts, "last_attempt": now,
                                  "last_status": status, "last_error": error}
        if delivered or failed:
            values.update(state=STATE_DELIVERED if delivered else STATE_FAILED,
                          done_at=now, leased_until=None, lease_owner=None)
        elif next_attempt is not None:
            values.update(next_attempt=next_attempt, leased_until=None, lease_owner=None)
        stats: dict[str, Any] = {
            "delivery_attempts": subscriptions.c.delivery_attempts + 1,
            "last_attempt": now, "last_status": status, "last_error": error,
        }
        if delivered:
            stats.update(deliveries=subscriptions.c.deliveries + 1, last_success=now,
                         consecutive_failures=0)
        else:
            stats.update(consecutive_failures=subscriptions.c.consecutive_failures + 1,
                         last_failure=now)
        if failed:
            stats["delivery_failures"] = subscriptions.c.delivery_failures + 1
        with self._db.write() as conn:
            # Only while we hold the lease: a row re-leased by another
            # dispatcher (ours ran out) is theirs to record.
            result = conn.execute(sa.update(outbox)
                                  .where(outbox.c.seq == row.seq,
                                         outbox.c.lease_owner == owner)
                                  .values(**values))
            if not result.rowcount:
                return
            outcome = (history.OUTCOME_DELIVERED if delivered
                       else history.OUTCOME_FAILED if failed else history.OUTCOME_RETRY)
            history.record_attempts(conn, [history.attempt_row(
                row, attempt=attempts, outcome=outcome, status=status, error=error,
                latency_ms=latency_ms, now=now)])
            conn.execute(sa.update(subscriptions)
                         .where(subscriptions.c.id == row.subscription_id).values(**stats))

    def record_deliveries(self, delivered: Sequence[Delivered], owner: str) -> None:
        """Record successful attempts (the hot path) together: what
        ``record_attempt(delivered=True)`` does for each, in one transaction
        of a few statements instead of three statements and a commit per row.
        Rows another dispatcher leased meanwhile are left to it, as there."""
        if not delivered:
            return
        now = clock.now()
        by_values: dict[tuple[int, int | None], list[Delivered]] = {}
        for item in delivered:
            by_values.setdefault((item.attempts, item.status), []).append(item)
        with self._db.write() as conn:
            ours: set[int] = set()
            for (attempts, status), items in by_values.items():
                ours.update(conn.execute(_delivered_statement(), {
                    "b_seqs": [item.row.seq for item in items], "b_owner": owner,
                    "b_attempts": attempts, "b_status": status, "b_now": now}).scalars())
            recorded = [item for item in delivered if item.row.seq in ours]
            history.record_attempts(conn, [history.attempt_row(
                item.row, attempt=item.attempts, outcome=history.OUTCOME_DELIVERED,
                status=item.status, error=None, latency_ms=item.latency_ms, now=now)
                for item in recorded])
            per_subscription: dict[str, list[Delivered]] = {}
            for item in recorded:
                per_subscription.setdefault(item.row.subscription_id, []).append(item)
            # Sorted: two dispatchers lock subscription rows in one order.
            for subscription_id in sorted(per_subscription):
                items = per_subscription[subscription_id]
                conn.execute(_delivered_stats_statement(), {
                    "b_id": subscription_id, "b_count": len(items), "b_now": now,
                    "b_status": items[-1].status})

    def extend_lease(self, seqs: Sequence[int], owner: str, lease_seconds: float) -> None:
        if not seqs:
            return
        with self._db.write() as conn:
            conn.execute(sa.update(outbox)
                         .where(outbox.c.seq.in_(list(seqs)), outbox.c.lease_owner == owner)
                         .values(leased_until=clock.now() + lease_seconds))

    def release(self, seqs: Sequence[int], owner: str) -> None:
        """Give leased rows back untouched (stopping dispatcher)."""
        if not seqs:
            return
        with self._db.write() as conn:
            conn.execute(sa.update(outbox)
                         .where(outbox.c.seq.in_(list(seqs)), outbox.c.lease_owner == owner,
                                outbox.c.state == STATE_PENDING)
                         .values(leased_until=None, lease_owner=None))

    def drop(self, seqs: Sequence[int]) -> None:
        if seqs:
            with self._db.write() as conn:
                conn.execute(sa.delete(outbox).where(outbox.c.seq.in_(list(seqs))))

    def collect_garbage(self, retention: float) -> int:
        """Delete delivered rows older than ``retention`` seconds."""
        with self._db.write() as conn:
            return conn.execute(
                sa.delete(outbox).where(outbox.c.state == STATE_DELIVERED,
                                        outbox.c.done_at <= clock.now() - retention)
            ).rowcount or 0

    def rows(self, project: str | None = None, queue: str | None = None) -> list[Any]:
        """Every row (of one queue): for inspection and tests."""
        stmt = sa.select(outbox).order_by(outbox.c.seq)
        if project is not None:
            stmt = stmt.where(outbox.c.project == project)
        if queue is not None:
            stmt = stmt.where(outbox.c.queue == queue)
        with self._db.read() as conn:
            return list(conn.execute(stmt).all())

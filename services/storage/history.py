"""Delivery history: who claimed a message when, and every push attempt.

Two append-only tables (``herald.storage.schema``):

* ``claim_history``: one row per claimed message, written by
  ``record_claim`` inside the claim's own transaction as ONE multi-row
  INSERT per claim (a claim that commits has its history; one that rolls
  back has none);
* ``delivery_attempts``: one row per push attempt, written by
  ``record_attempt`` in the transaction that records the attempt on its
  outbox row (``herald.storage.outbox``), linked to the message through the
  outbox row's ``message_id``.

``deliveries`` reads both for ``GET /v2/queues/{q}/messages/{id}/deliveries``;
the history outlives the message (an acknowledged message's history is the
interesting one) until ``[storage] delivery_history_retention`` passes and
``collect_garbage`` deletes it (``forget_queue`` at once, for the health
probe's scratch queues). Must not decide anything about claims or
deliveries: it only records and reads.

Tenancy: every row carries the project and queue of its message, and
``deliveries`` reads by (project, queue, message id): another project's (or
queue's) message id is "does not exist", even while its history is kept.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herald.common import errors, ids, timeutils
from herald.storage import base, clock, idempotency
from herald.storage.engine import Database
from herald.storage.schema import claim_history, delivery_attempts, messages

OUTCOME_DELIVERED = "delivered"
OUTCOME_RETRY = "retry"
OUTCOME_FAILED = "failed"


def record_claim(conn: Connection, *, project: str, queue: str, claim_id: str,
                 client_id: str, message_ids: list[str], now: float, ttl: int,
                 grace: int) -> None:
    """One INSERT with a row per claimed message, in the claim's transaction."""
    if not message_ids:
        return
    conn.execute(sa.insert(claim_history), [
        {"project": project, "queue": queue, "message_id": message_id,
         "claim_id": claim_id, "client_id": (client_id or "")[:256], "claimed_at": now,
         "ttl": ttl, "grace": grace}
        for message_id in message_ids])


def claim_history_from(claimed: Any) -> sa.Insert:
    """``record_claim`` as an INSERT ... SELECT from ``claimed`` (a selectable
    with the claimed messages' ``seq`` and ``id``), so that PostgreSQL's claim
    writes its history in the claim statement itself (a CTE). Its values are
    bound at execution: ``b_project``, ``b_queue``, ``b_claim``, ``b_client``
    (at most 256 characters), ``b_now``, ``b_claim_ttl`` and ``b_claim_grace``."""
    def bound(name: str, column: str) -> Any:
        return sa.bindparam(name, type_=claim_history.c[column].type)

    return sa.insert(claim_history).from_select(
        ["project", "queue", "message_id", "claim_id", "client_id", "claimed_at", "ttl",
         "grace"],
        sa.select(bound("b_project", "project"), bound("b_queue", "queue"), claimed.c.id,
                  bound("b_claim", "claim_id"), bound("b_client", "client_id"),
                  bound("b_now", "claimed_at"), bound("b_claim_ttl", "ttl"),
                  bound("b_claim_grace", "grace"))
        .order_by(claimed.c.seq))


def attempt_row(row: Any, *, attempt: int, outcome: str, status: int | None,
                error: str | None, latency_ms: float, now: float) -> dict[str, Any]:
    """The history row of one push attempt of outbox ``row``."""
    return dict(
        project=row.project, queue=row.queue, message_id=getattr(row, "message_id", None),
        subscription_id=row.subscription_id, subscriber=row.subscriber, kind=row.kind,
        outbox_seq=row.seq, attempt=attempt, attempted_at=now, outcome=outcome,
        status=status, error=error, latency_ms=round(float(latency_ms), 3))


def record_attempts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """History rows (``attempt_row``), in the transaction recording them in
    the outbox: one INSERT."""
    if rows:
        conn.execute(sa.insert(delivery_attempts), rows)


def deliveries(db: Database, project: str, queue: str, message_id: str) -> dict[str, Any]:
    """The message's claims and push attempts, oldest first (see StorageAPI)."""
    if not ids.is_valid_id(message_id):
        raise errors.MessageDoesNotExist.of(message_id, queue, project)
    now = clock.now()
    with db.read() as conn:
        exists = conn.execute(
            sa.select(messages.c.seq)
            .where(base.in_queue(project, queue), base.live(now), messages.c.id == message_id)
        ).first() is not None
        claims = conn.execute(
            sa.select(claim_history)
            .where(claim_history.c.message_id == message_id,
                   claim_history.c.project == project, claim_history.c.queue == queue)
            .order_by(claim_history.c.seq)
        ).all()
        pushes = conn.execute(
            sa.select(delivery_attempts)
            .where(delivery_attempts.c.message_id == message_id,
                   delivery_attempts.c.project == project,
                   delivery_attempts.c.queue == queue)
            .order_by(delivery_attempts.c.seq)
        ).all()
    if not (exists or claims or pushes):
        raise errors.MessageDoesNotExist.of(message_id, queue, project)
    return {
        "message_id": message_id,
        "exists": exists,
        "claims": [{
            "claim_id": c.claim_id,
            "client_id": c.client_id,
            "claimed_at": timeutils.isotime(c.claimed_at),
            "ttl": int(c.ttl),
            "grace": int(c.grace),
            # The n-th claim of this message (1 for the first): counted from
            # the history, so it holds whether or not a dead-letter queue
            # keeps the message's own counter.
            "claim_count": number,
        } for number, c in enumerate(claims, start=1)],
        "pushes": [attempt_object(p) for p in pushes],
    }


def attempt_object(p: Any) -> dict[str, Any]:
    return {
        "subscription_id": p.subscription_id,
        "subscriber": p.subscriber,
        "kind": p.kind,
        "attempt": int(p.attempt),
        "attempted_at": timeutils.isotime(p.attempted_at),
        "outcome": p.outcome,
        "status": p.status,
        "error": p.error,
        "latency_ms": float(p.latency_ms),
    }


def collect_garbage(db: Database, retention: float) -> int:
    """Delete history older than ``retention`` seconds and expired
    idempotency keys; returns the history rows deleted."""
    now = clock.now()
    with db.write() as conn:
        deleted = conn.execute(sa.delete(claim_history).where(
            claim_history.c.claimed_at <= now - retention)).rowcount or 0
        deleted += conn.execute(sa.delete(delivery_attempts).where(
            delivery_attempts.c.attempted_at <= now - retention)).rowcount or 0
        idempotency.collect_garbage(conn, now)
    return deleted


def forget_queue(db: Database, project: str, queue: str) -> None:
    """Delete the whole history of one queue now (the health probe's scratch
    queue: nobody will read it, and it must not wait for the retention)."""
    with db.write() as conn:
        conn.execute(sa.delete(claim_history).where(claim_history.c.project == project,
                                                    claim_history.c.queue == queue))
        conn.execute(sa.delete(delivery_attempts).where(
            delivery_attempts.c.project == project, delivery_attempts.c.queue == queue))

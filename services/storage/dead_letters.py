"""Dead-letter moves: over-claimed messages into their dead-letter queue.

``claims`` decides which messages a claim dead-letters (semantics.md §7) and
hands them here, inside the claim's transaction, with the database the
dead-letter queue (DLQ) lives in. A moved message keeps its id, body, group,
poster and creation time, remembers its source queue (a redrive sends it
back), and arrives at the DLQ's end unclaimed, with a fresh claim count and,
with ``_dead_letter_queue_messages_ttl``, its expiry restarted.

* **The DLQ lives in the claim's database** (always without pooling; with
  pooling, both queues on one pool or both in the main database): ``move``
  deletes the rows and inserts them at the DLQ's end in the claim's
  transaction. All or nothing.
* **It lives in another database** (with pooling: on another pool, or one
  queue in the main database and the other on a pool): no transaction spans
  two databases. ``hold`` gives the rows a claim of their own for
  ``HOLD_SECONDS``, in the claim's transaction: from its commit on every
  other claimer passes them by, so two claimers never dead-letter one
  message twice. After that commit, ``CrossMove.finish`` inserts their
  copies into the DLQ's database and commits, then deletes the held rows
  from the source and commits. Between the two commits a message is in both
  databases; it is never in neither.

  A move that stops part-way (the DLQ's database failing, a worker killed)
  leaves the held rows in the source queue, claimed by nobody a client
  knows; when the hold ends, the next claim of the source moves them again.
  Copies an earlier attempt committed are not inserted twice (``ON CONFLICT
  (id) DO NOTHING``: a message id is unique in its database). So the move is
  at-least-once: only a copy consumed from the DLQ while its source row was
  still held can come back (docs/dead-letter-redrive.md, "With pooling").

Never is a transaction open on one database while another is written: two
queues dead-lettering into each other's pools would then wait for each
other (SQLite's file write lock, a grouped queue's claim lock, PostgreSQL
row locks) with neither database seeing a deadlock to break.

Must not decide which messages are dead-lettered (``claims``) nor read the
pool catalog (``Placement``: the router's, ``herald.storage.pools``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from herald.common import ids
from herald.storage import base, counters
from herald.storage.engine import Database
from herald.storage.schema import messages

LOG = logging.getLogger(__name__)

#: Seconds a cross-database move holds its messages in the source queue. A
#: move takes milliseconds; the hold only lasts when one stopped part-way,
#: and is then how long its messages wait before the next claim moves them.
HOLD_SECONDS = 60


class Placement(Protocol):
    """Where queues live, seen from a claim controller's database."""

    def database_of(self, project: str, queue: str) -> Database | None:
        """The database ``queue`` lives in; None when it is this one."""


def copies(project: str, dlq: str, rows: list[Any], dlq_ttl: int | None,
           now: float) -> list[dict[str, Any]]:
    """The DLQ's rows for ``rows`` (``messages`` rows of the source queue)."""
    moved = []
    for row in rows:
        ttl, expires = (dlq_ttl, now + dlq_ttl) if dlq_ttl else (row.ttl, row.expires)
        moved.append({
            "id": row.id, "project": project, "queue": dlq, "body": row.body,
            "ttl": ttl, "created": row.created, "expires": expires,
            "visible_at": row.visible_at, "client_id": row.client_id,
            "claim_id": None, "claim_expires": None, "claim_count": 0,
            "checksum": row.checksum, "group_id": row.group_id,
            "source_queue": row.queue,  # where redrive sends it back
        })
    return moved


def _lock_dlq(conn: sa.Connection, project: str, dlq: str, now: float) -> None:
    base.ensure_queue(conn, project, dlq, None, now)
    # Same ordering lock as posters take (see base.queue_metadata): the
    # copies' positions commit in the order they were allocated.
    base.queue_metadata(conn, project, dlq, lock=conn.dialect.name == "postgresql")


def move(conn: sa.Connection, project: str, dlq: str, rows: list[Any],
         dlq_ttl: int | None, now: float) -> None:
    """Move ``rows`` to ``dlq`` of the same database, in ``conn``'s transaction."""
    _lock_dlq(conn, project, dlq, now)
    conn.execute(sa.delete(messages).where(messages.c.seq.in_([row.seq for row in rows])))
    moved = copies(project, dlq, rows, dlq_ttl, now)
    base.mark_grouped(conn, moved)
    conn.execute(sa.insert(messages), moved)


@dataclass(frozen=True)
class CrossMove:
    """Held rows of ``source``, to be moved to ``dlq`` in ``target`` (``finish``)."""

    source: Database
    target: Database
    project: str
    queue: str
    dlq: str
    holder: str
    seqs: list[int]
    rows: list[dict[str, Any]]
    now: float

    def finish(self) -> None:
        """Insert the copies into the DLQ's database, then delete the held
        rows. Raises nothing: what fails is moved again when the hold ends."""
        try:
            _insert_copies(self.target, self.project, self.dlq, self.rows, self.now)
        except Exception:
            LOG.warning("dead-letter move of %d message(s) from %s/%s to %s failed in the "
                        "dead-letter queue's database; they stay in the source queue and "
                        "are moved by a claim after %d s", len(self.rows), self.project,
                        self.queue, self.dlq, HOLD_SECONDS, exc_info=True)
            return
        try:
            deleted = _delete_held(self.source, self.seqs, self.holder)
        except Exception:
            LOG.warning("dead-letter move of %d message(s) from %s/%s to %s: copied, but "
                        "not deleted from the source queue; a claim after %d s deletes "
                        "them", len(self.rows), self.project, self.queue, self.dlq,
                        HOLD_SECONDS, exc_info=True)
            return
        counters.dead_lettered(self.source, deleted)


def hold(conn: sa.Connection, source: Database, target: Database, project: str,
         queue: str, dlq: str, rows: list[Any], dlq_ttl: int | None,
         now: float) -> CrossMove:
    """Hold ``rows`` (locked by the claim's transaction on ``conn``) for a move
    to ``dlq`` in ``target``; the caller runs ``finish`` after its commit."""
    holder = ids.new_id()
    seqs = [row.seq for row in rows]
    conn.execute(sa.update(messages).where(messages.c.seq.in_(seqs))
                 .values(claim_id=holder, claim_expires=now + HOLD_SECONDS))
    return CrossMove(source, target, project, queue, dlq, holder, seqs,
                     copies(project, dlq, rows, dlq_ttl, now), now)


def _insert_copies(target: Database, project: str, dlq: str, rows: list[dict[str, Any]],
                   now: float) -> None:
    with target.write() as conn:
        _lock_dlq(conn, project, dlq, now)
        base.mark_grouped(conn, rows)
        # A copy an earlier attempt committed is there already: not twice.
        conn.execute(base.insert_for(conn)(messages).on_conflict_do_nothing(
            index_elements=["id"]), rows)


def _delete_held(source: Database, seqs: list[int], holder: str) -> int:
    with source.write() as conn:
        return int(conn.execute(sa.delete(messages).where(
            messages.c.seq.in_(seqs), messages.c.claim_id == holder)).rowcount)

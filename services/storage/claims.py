"""Claim controller: create, read, renew, release (semantics.md §5, §7).

The database decides who gets a message. A claim selects the oldest
claimable rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL: two
claimers lock disjoint rows, neither waits) and updates them in the same
transaction; on SQLite the write transaction is ``BEGIN IMMEDIATE``, so
claimers run one after the other. A message is thus never in two live
claims. Dead-letter moves (``dead_letters``) happen during that selection,
in that transaction (a DLQ in another database: the transaction holds the
messages, the move follows its commit), and so does the claim's record in
the delivery history (``history``). Must not rely on tooz for any of this.

Tenancy: a claim is looked up, renewed and released by (project, queue, id),
and every statement that touches a claim's rows says so; another project's
or queue's claim id is "not found" (or a no-op release), never a claim.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from herald.common import errors, ids
from herald.storage import base, claim_groups, clock, counters, dead_letters, history
from herald.storage.claim_connections import registration
from herald.storage.engine import Database
from herald.storage.schema import claims, messages, queues

_ALL_MESSAGE_COLUMNS = tuple(messages.c)


@functools.cache
def _plain_claim_update(grouped: bool = False) -> sa.Update:
    """The fast path's claim (``ClaimController._claim_plain``) as one UPDATE
    ... RETURNING, built once: every value is bound at execution. Built per
    claim (CTEs, subqueries, and SQLAlchemy's cache key each time) it cost
    more CPU than the rest of the claim. ``grouped``: the variant for a
    grouped queue (``claim_groups``), taken under its claim lock."""
    project, queue, now = sa.bindparam("b_project"), sa.bindparam("b_queue"), sa.bindparam("b_now")
    # No DLQ, and (plain variant) no message groups: tests of the queue row.
    no_dlq = sa.exists().where(
        queues.c.project == project, queues.c.name == queue,
        queues.c.grouped == (sa.true() if grouped else sa.false()),
        sa.not_(sa.and_(queues.c.metadata.contains(f'"{_MAX_CLAIMS}"', autoescape=True),
                        queues.c.metadata.contains(f'"{_DLQ}"', autoescape=True))))
    chosen = (sa.select(messages.c.seq)
              .where(base.in_queue(project, queue),
                     base.from_queue_start(project, queue), base.live(now),
                     base.unclaimed(now), base.visible(now), no_dlq)
              .order_by(messages.c.seq)
              .limit(sa.bindparam("b_limit")))
    # Grouped: plain FOR UPDATE, as skipping a locked head would overtake it.
    chosen = (chosen.where(claim_groups.claimable(project, queue, now)).with_for_update(
        of=messages) if grouped else chosen.with_for_update(skip_locked=True))
    # SET sees the old row: both CASEs test the old expiry.
    short_lived = messages.c.expires < sa.bindparam("b_claim_expires")
    return (sa.update(messages)
            .where(messages.c.seq.in_(chosen.scalar_subquery()))
            .values(claim_id=sa.bindparam("b_claim"),
                    claim_expires=sa.bindparam("b_claim_expires"),
                    expires=sa.case((short_lived, sa.bindparam("b_lifetime_end")),
                                    else_=messages.c.expires),
                    ttl=sa.case((short_lived, sa.bindparam("b_lifetime")),
                                else_=messages.c.ttl))
            .returning(*base.MESSAGE_COLUMNS))


@functools.cache
def _plain_claim_with_records(grouped: bool = False) -> sa.Select[Any]:
    """PostgreSQL: ``_plain_claim_update`` with the claim row and the claim
    history written by the same statement (data-modifying CTEs run exactly
    once, whether or not the main query reads them; the claim row only
    exists if something was claimed). Built once, values bound."""
    claimed = _plain_claim_update(grouped).cte("claimed")
    claim_values = {"id": "b_claim", "project": "b_project", "queue": "b_queue",
                    "ttl": "b_claim_ttl", "grace": "b_claim_grace", "updated": "b_now",
                    "expires": "b_claim_expires", "gateway_id": "b_gateway",
                    "connection_id": "b_connection"}
    claim_row = sa.insert(claims).from_select(
        list(claim_values),
        sa.select(*(sa.bindparam(param, type_=claims.c[column].type)
                    for column, param in claim_values.items()))
        .where(sa.exists(sa.select(claimed.c.seq)))).cte("claim_row")
    history_rows = history.claim_history_from(claimed)
    return (sa.select(*claimed.c).order_by(claimed.c.seq)
            .add_cte(claim_row, history_rows.cte("claim_history_rows")))


_MAX_CLAIMS = "_max_claim_count"
_DLQ = "_dead_letter_queue"
_DLQ_TTL = "_dead_letter_queue_messages_ttl"


def _int_setting(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _may_enable_dlq(metadata: dict[str, Any]) -> bool:
    """Whether the fast claim path's text test left this queue to the exact
    path: its stored JSON names both DLQ keys (maybe only inside values)."""
    text = base.dump_metadata(metadata)
    return f'"{_MAX_CLAIMS}"' in text and f'"{_DLQ}"' in text


def _dlq_enabled(metadata: dict[str, Any]) -> bool:
    """semantics.md §7: both an int max claim count and a DLQ name."""
    dlq = metadata.get(_DLQ)
    return _int_setting(metadata, _MAX_CLAIMS) is not None and isinstance(dlq, str) and bool(dlq)


class ClaimController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts,
                 placement: dead_letters.Placement | None = None) -> None:
        self._db = db
        self._conf = conf
        self._placement = placement  # None: every DLQ lives in this database

    @counters.claims
    def create(self, project: str, queue: str, ttl: int, grace: int, limit: int,
               client_id: str = "", connection: dict[str, Any] | None = None,
               claim_id: str | None = None) -> dict[str, Any]:
        """Claim up to ``limit`` messages as ``claim_id`` (default: a new id); ``connection``
        registers the claim with a websocket connection (``herald.storage.claim_connections``)."""
        now = clock.now()
        claim_id = claim_id or ids.new_id()
        owner = registration(connection)
        moves: list[dead_letters.CrossMove] = []
        with self._db.write() as conn:
            # Fast path, queues without a DLQ or groups (nearly all): one conditional
            # UPDATE ... RETURNING claims the rows (PostgreSQL: with the
            # claim row and the delivery history in the same statement).
            rows = self._claim_plain(conn, project, queue, claim_id, now, ttl, grace,
                                     limit, client_id, owner)
            if rows:
                return {"claim_id": claim_id,
                        "messages": [base.stored_message(r, now) for r in rows]}
            # Nothing claimed: an empty or missing queue, or one the fast path
            # leaves alone (DLQ, groups). A grouped queue's other claims end first.
            settings = claim_groups.queue_settings(conn, project, queue)
            if settings is None or not (settings[1] or _may_enable_dlq(settings[0])):
                # Lazy queues: nothing can be claimed from a queue never created.
                return {"claim_id": None, "messages": []}
            metadata, grouped = settings
            if grouped and not _may_enable_dlq(metadata):
                rows = self._claim_plain(conn, project, queue, claim_id, now, ttl, grace,
                                         limit, client_id, owner, grouped=True)
            else:
                rows = self._claim_with_dlq(conn, project, queue, claim_id, metadata, now,
                                            ttl, grace, limit, client_id, owner, grouped,
                                            moves)
        for move in moves:
            # Dead letters held for a DLQ in another database move once the
            # claim committed (a coalesced batch's: once the batch did).
            self._db.after_commit(move.finish)
        return {"claim_id": claim_id if rows else None,
                "messages": [base.stored_message(r, now) for r in rows]}

    @staticmethod
    def _claim_plain(conn: sa.Connection, project: str, queue: str, claim_id: str,
                     now: float, ttl: int, grace: int, limit: int,
                     client_id: str, owner: dict[str, str | None],
                     grouped: bool = False) -> list[Any]:
        """Claim up to ``limit`` messages of a queue without a DLQ (``grouped``:
        of a grouped one, by the group rules); [] if none.

        The candidate subquery only matches when the queue row exists and its
        metadata text cannot enable a DLQ (it lacks one of the two keys of
        semantics.md §7): a conservative test, a value that merely contains
        a key's name sends the claim down the exact path. The message
        lifetimes are extended (semantics.md §5.1) by the same UPDATE.
        """
        # b_: a bound value may not be named like a column an INSERT or UPDATE writes.
        params = {"b_project": project, "b_queue": queue, "b_now": now, "b_limit": limit,
                  "b_claim": claim_id, "b_claim_ttl": ttl, "b_claim_grace": grace,
                  "b_claim_expires": now + ttl, "b_lifetime_end": now + ttl + grace,
                  "b_lifetime": ttl + grace, "b_client": (client_id or "")[:256],
                  "b_gateway": owner["gateway_id"], "b_connection": owner["connection_id"]}
        if conn.dialect.name != "postgresql":
            # SQLite has no data-modifying CTEs; in-process statements are
            # cheap there, and its write transaction is already exclusive.
            rows = sorted(conn.execute(_plain_claim_update(grouped), params).all(),
                          key=lambda row: row.seq)
            if rows:
                conn.execute(sa.insert(claims).values(
                    id=claim_id, project=project, queue=queue, ttl=ttl, grace=grace,
                    updated=now, expires=now + ttl, **owner))
                history.record_claim(conn, project=project, queue=queue, claim_id=claim_id,
                                     client_id=client_id, message_ids=[r.id for r in rows],
                                     now=now, ttl=ttl, grace=grace)
            return rows
        return list(conn.execute(_plain_claim_with_records(grouped), params).all())

    def _claim_with_dlq(self, conn: sa.Connection, project: str, queue: str, claim_id: str,
                        metadata: dict[str, Any], now: float, ttl: int, grace: int,
                        limit: int, client_id: str, owner: dict[str, str | None],
                        grouped: bool, moves: list[dead_letters.CrossMove]) -> list[Any]:
        """The exact path (semantics.md §7): select (grouped: ``claim_groups``),
        dead-letter over-claimed messages, claim the rest; several statements.
        Dead letters for a DLQ in another database are held and added to
        ``moves``, which the caller finishes after the commit."""
        claim_expires = now + ttl
        max_claims = _int_setting(metadata, _MAX_CLAIMS)
        dlq = metadata.get(_DLQ)
        dlq_enabled = _dlq_enabled(metadata)
        if grouped:
            candidates = claim_groups.candidates(conn, project, queue, now, limit)
        else:
            candidates = conn.execute(
                sa.select(*_ALL_MESSAGE_COLUMNS)
                .where(base.in_queue(project, queue), base.from_queue_start(project, queue),
                       base.live(now), base.unclaimed(now), base.visible(now))
                .order_by(messages.c.seq)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
        if dlq_enabled:
            assert max_claims is not None and isinstance(dlq, str)
            to_move = [row for row in candidates if row.claim_count >= max_claims]
            to_claim = [row.seq for row in candidates if row.claim_count < max_claims]
            if to_move:
                moves.extend(self._dead_letter(conn, project, queue, dlq, to_move,
                                               metadata, now))
        else:
            to_claim = [row.seq for row in candidates]
        if not to_claim:
            return []
        conn.execute(sa.insert(claims).values(
            id=claim_id, project=project, queue=queue, ttl=ttl, grace=grace,
            updated=now, expires=claim_expires, **owner,
        ))
        values: dict[str, Any] = {"claim_id": claim_id, "claim_expires": claim_expires}
        # Kept only where a DLQ is set up; elsewhere 0, as the reference shows it.
        if dlq_enabled:
            values["claim_count"] = messages.c.claim_count + 1
        conn.execute(sa.update(messages).where(messages.c.seq.in_(to_claim)).values(**values))
        self._extend_lifetimes(conn, project, queue, claim_id, now, ttl, grace)
        rows = conn.execute(
            sa.select(*base.MESSAGE_COLUMNS)
            .where(messages.c.seq.in_(to_claim))
            .order_by(messages.c.seq)
        ).all()
        # Delivery history: one INSERT for the batch, committed with the claim.
        history.record_claim(conn, project=project, queue=queue, claim_id=claim_id,
                             client_id=client_id, message_ids=[r.id for r in rows],
                             now=now, ttl=ttl, grace=grace)
        return list(rows)

    @staticmethod
    def _extend_lifetimes(conn: sa.Connection, project: str, queue: str, claim_id: str,
                          now: float, ttl: int, grace: int) -> None:
        # A message must outlive its claim: one that would expire before the
        # claim does now lives until claim expiry + grace, and reports
        # ttl = claim ttl + grace (reference quirk, kept).
        conn.execute(
            sa.update(messages)
            .where(base.in_queue(project, queue), messages.c.claim_id == claim_id,
                   messages.c.expires < now + ttl)
            .values(expires=now + ttl + grace, ttl=ttl + grace)
        )

    def _dead_letter(self, conn: sa.Connection, project: str, queue: str, dlq: str,
                     rows: list[Any], metadata: dict[str, Any],
                     now: float) -> list[dead_letters.CrossMove]:
        """Move over-claimed ``rows`` to the DLQ here, or hold them for a move
        to its database (returned). The placement is asked only here, when a
        claim dead-letters: without pooling it reads nothing."""
        dlq_ttl = _int_setting(metadata, _DLQ_TTL)
        target = None if self._placement is None else self._placement.database_of(project, dlq)
        if target is None:
            dead_letters.move(conn, project, dlq, rows, dlq_ttl, now)
            counters.dead_lettered(self._db, len(rows))
            return []
        return [dead_letters.hold(conn, self._db, target, project, queue, dlq, rows,
                                  dlq_ttl, now)]

    def _live_claim(self, conn: sa.Connection, project: str, queue: str, claim_id: str,
                    now: float, lock: bool = False) -> Any:
        stmt = sa.select(claims).where(claims.c.id == claim_id, claims.c.project == project,
                                       claims.c.queue == queue, claims.c.expires > now)
        if lock:
            stmt = stmt.with_for_update()
        return conn.execute(stmt).one_or_none()

    def get(self, project: str, queue: str, claim_id: str) -> dict[str, Any]:
        if not ids.is_valid_id(claim_id):
            raise errors.ClaimDoesNotExist.of(claim_id, queue, project)
        now = clock.now()
        # One statement: the live claim joined to its live messages.
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(*base.MESSAGE_COLUMNS, claims.c.ttl.label("claim_ttl"),
                          claims.c.updated.label("claim_updated"))
                .join(claims, messages.c.claim_id == claims.c.id)
                .where(claims.c.id == claim_id, claims.c.project == project,
                       claims.c.queue == queue, claims.c.expires > now,
                       base.in_queue(project, queue), base.live(now))
                .order_by(messages.c.seq)
            ).all()
        if not rows:
            # Unknown, expired, released and emptied claims all look the same.
            raise errors.ClaimDoesNotExist.of(claim_id, queue, project)
        return {
            "id": claim_id,
            "ttl": int(rows[0].claim_ttl),
            "age": max(0, int(now - rows[0].claim_updated)),
            "messages": [base.stored_message(row, now) for row in rows],
        }

    def update(self, project: str, queue: str, claim_id: str, ttl: int, grace: int,
               connection: dict[str, Any] | None = None) -> None:
        """Renew a live claim. A renewal is an ordinary use of the claim: it
        drops the claim's connection registration, unless it came over a
        websocket with ``release_on_close`` (``connection``), which moves
        the registration to that connection."""
        if not ids.is_valid_id(claim_id):
            raise errors.ClaimDoesNotExist.of(claim_id, queue, project)
        # The API range-checks only a renewal's ttl (Zaqar's rule), so any
        # integer grace reaches us; keep it within what a claim may carry
        # rather than overflow the database's integer columns.
        grace = max(0, min(grace, self._conf.limits.max_claim_grace))
        now = clock.now()
        with self._db.write() as conn:
            claim = self._live_claim(conn, project, queue, claim_id, now, lock=True)
            held = claim is not None and conn.execute(
                sa.select(sa.func.count()).select_from(messages)
                .where(base.in_queue(project, queue), base.live(now),
                       messages.c.claim_id == claim_id)
            ).scalar_one()
            if not held:
                raise errors.ClaimDoesNotExist.of(claim_id, queue, project)
            # Every statement names (project, queue, id), not the id alone,
            # though the id was found there: no write ever relies on ids
            # being unguessable to stay within a project.
            conn.execute(
                sa.update(claims).where(claims.c.id == claim_id, claims.c.project == project,
                                        claims.c.queue == queue)
                .values(ttl=ttl, grace=grace, updated=now, expires=now + ttl,
                        **registration(connection))
            )
            conn.execute(
                sa.update(messages).where(base.in_queue(project, queue),
                                          messages.c.claim_id == claim_id)
                .values(claim_expires=now + ttl)
            )
            self._extend_lifetimes(conn, project, queue, claim_id, now, ttl, grace)

    def delete(self, project: str, queue: str, claim_id: str) -> None:
        if not ids.is_valid_id(claim_id):
            return
        with self._db.write() as conn:
            conn.execute(
                sa.update(messages)
                .where(base.in_queue(project, queue), messages.c.claim_id == claim_id)
                .values(claim_id=None, claim_expires=None)
            )
            released = conn.execute(sa.delete(claims).where(claims.c.id == claim_id,
                                                            claims.c.project == project,
                                                            claims.c.queue == queue)).rowcount
        if released:
            # Its messages are claimable again: long polls may take them.
            self._db.wiring.wakeups.messages_available(project, queue)

    def collect_garbage(self, project: str, queue: str) -> int:
        """Delete the queue's expired messages and claims; returns messages deleted.

        Correctness never depends on this (reads filter by expiry); it only
        keeps tables and indexes small.
        """
        now = clock.now()
        with self._db.write() as conn:
            deleted = conn.execute(
                sa.delete(messages).where(base.in_queue(project, queue),
                                          messages.c.expires <= now)
            ).rowcount
            conn.execute(sa.delete(claims).where(claims.c.project == project,
                                                 claims.c.queue == queue,
                                                 claims.c.expires <= now))
        return deleted

    def expired_queues(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(project, queue) pairs that hold expired messages or claims."""
        now = clock.now()
        with self._db.read() as conn:
            pairs = {(row.project, row.queue) for row in conn.execute(
                sa.select(messages.c.project, messages.c.queue)
                .where(messages.c.expires <= now).distinct().limit(limit)
            )}
            pairs.update((row.project, row.queue) for row in conn.execute(
                sa.select(claims.c.project, claims.c.queue)
                .where(claims.c.expires <= now).distinct().limit(limit)
            ))
        return sorted(pairs)

"""Message controller: the storage operations on messages (semantics.md §3, §6, §11).

``MessageController`` is what the endpoint calls (through the pool router,
one instance per database): it reads (``list``, ``get``, ``get_many``),
deletes (``delete``, ``delete_each``, ``delete_many``), pops and releases
(``release``: one message out of its claim, after a delay) messages here,
and hands posts to ``posting.MessagePoster`` (the post paths, their caches
in ``post_caches``, the rows in ``post_rows``).

Everything a message read returns is filtered by expiry in SQL at the time
of the call, so an expired message is invisible at once, whatever the
garbage collector has done. Reads and deletes are one statement each on
the hot path (tests/contract/test_statement_counts.py); their statements of
a fixed shape are built once (``functools.cache``), not per call.
Validation here is only what needs the stored rows; everything else is
checked by the edge before the call.
Must not create claims (see ``claims``), post (``posting``), nor deliver
notifications.

Thread-safety: one controller per database, shared by the worker's
executor threads; it keeps no state between calls (the poster's caches are
``post_caches``'s).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from herald.common import errors, ids, metrics
from herald.storage import base, clock, pipeline
from herald.storage.engine import Database
from herald.storage.posting import MessagePoster
from herald.storage.schema import messages


def parse_marker(marker: str | None) -> int | None:
    """The position a marker names; -1 for one that cannot be interpreted."""
    if marker is None or marker == "":
        return None
    if not marker.isdigit() or not marker.isascii() or len(marker) > 19:
        return -1
    return int(marker)


@functools.cache
def _list_statement(after_marker: bool, include_claimed: bool, include_delayed: bool,
                    hide_client: bool) -> sa.Select[Any]:
    """The listing statement of one shape (16 in all), built once; its values
    are bound at execution: ``project``, ``queue``, ``now``, ``limit``, and
    ``marker`` and ``client`` where the shape has them. Built per call (with
    SQLAlchemy computing its cache key each time) it was a third of a list's
    CPU on the worker."""
    project, queue = sa.bindparam("project"), sa.bindparam("queue")
    now = sa.bindparam("now")
    stmt = (sa.select(*base.MESSAGE_COLUMNS)
            .where(base.in_queue(project, queue), base.live(now))
            .order_by(messages.c.seq)
            .limit(sa.bindparam("limit")))
    if after_marker:
        stmt = stmt.where(messages.c.seq > sa.bindparam("marker"))
    else:
        stmt = stmt.where(base.from_queue_start(project, queue))
    if not include_claimed:
        stmt = stmt.where(base.unclaimed(now))
    if not include_delayed:
        stmt = stmt.where(base.visible(now))
    if hide_client:
        stmt = stmt.where(messages.c.client_id != sa.bindparam("client"))
    return stmt


@functools.cache
def _delete_statement() -> sa.Delete:
    """``MessageController.delete``'s conditional DELETE of message ``b_id``,
    built once: given a claim id (``b_claim``), only under that claim; with
    ``b_claim`` None, only an unclaimed message. One statement for both, so
    that ``delete_each``'s executemany can mix them."""
    project, queue, now = sa.bindparam("b_project"), sa.bindparam("b_queue"), sa.bindparam("b_now")
    claim = sa.bindparam("b_claim")
    return (sa.delete(messages)
            .where(base.in_queue(project, queue), base.live(now),
                   messages.c.id == sa.bindparam("b_id"),
                   sa.or_(messages.c.claim_id == claim,
                          sa.and_(claim.is_(None), base.unclaimed(now)))))


@functools.cache
def _release_statement() -> sa.Update:
    """``MessageController.release``'s conditional UPDATE, built once: message
    ``b_id`` leaves its live claim ``b_claim`` and becomes visible at
    ``b_visible``. ``claim_count`` is left alone: the claim was counted."""
    project, queue, now = sa.bindparam("b_project"), sa.bindparam("b_queue"), sa.bindparam("b_now")
    return (sa.update(messages)
            .where(base.in_queue(project, queue), base.live(now),
                   messages.c.id == sa.bindparam("b_id"),
                   messages.c.claim_id == sa.bindparam("b_claim"),
                   messages.c.claim_expires > now)
            .values(claim_id=None, claim_expires=None, visible_at=sa.bindparam("b_visible")))


#: Queues whose metadata a worker remembers for ``post_to_queues``; past

class MessageController:
    def __init__(self, db: Database, conf: cfg.ConfigOpts,
                 stages: list[pipeline.Stage] | None = None) -> None:
        self._db = db
        self._conf = conf
        self._poster = MessagePoster(db, conf,
                                     pipeline.build(conf, db.wiring) if stages is None else stages)

    # -- posting (posting.MessagePoster) ----------------------------------

    def post(self, project: str, queue: str, items: list[dict[str, Any]], body_size: int,
             client_id: str, request_id: str = "-",
             idempotency_key: str | None = None, traceparent: str = "",
             operation_id: str = "", attempt: int = 1) -> list[str]:
        """See ``MessagePoster.post``."""
        return self._poster.post(project, queue, items, body_size, client_id, request_id,
                                 idempotency_key, traceparent, operation_id, attempt)

    def post_many(self, project: str, queue: str,
                  posts: list[dict[str, Any]]) -> list[list[str] | errors.HeraldError]:
        """See ``MessagePoster.post_many``."""
        return self._poster.post_many(project, queue, posts)

    def post_to_queues(self, groups: list[tuple[str, str, list[dict[str, Any]]]]
                       ) -> list[list[list[str] | errors.HeraldError]] | None:
        """See ``MessagePoster.post_to_queues``."""
        return self._poster.post_to_queues(groups)

    # -- reading ----------------------------------------------------------

    def list(self, project: str, queue: str, marker: str | None, limit: int, echo: bool,
             include_claimed: bool, include_delayed: bool, client_id: str) -> dict[str, Any]:
        position = parse_marker(marker)
        if position == -1:
            return {"messages": [], "marker": None}
        now = clock.now()
        client = base.normalize_client_id(client_id)
        hide_client = bool(not echo and client)
        params: dict[str, Any] = {"project": project, "queue": queue, "now": now,
                                  "limit": limit}
        if position is not None:
            params["marker"] = position
        if hide_client:
            params["client"] = client
        stmt = _list_statement(position is not None, bool(include_claimed),
                               bool(include_delayed), hide_client)
        with self._db.read() as conn:
            rows = conn.execute(stmt, params).all()
        return {"messages": [base.stored_message(row, now) for row in rows],
                "marker": str(rows[-1].seq) if rows else None}

    def get(self, project: str, queue: str, message_id: str) -> dict[str, Any]:
        found = self.get_many(project, queue, [message_id])
        if not found:
            raise errors.MessageDoesNotExist.of(message_id, queue, project)
        return found[0]

    def get_many(self, project: str, queue: str, message_ids: list[str]) -> list[dict[str, Any]]:
        wanted = [mid for mid in dict.fromkeys(message_ids or []) if ids.is_valid_id(mid)]
        if not wanted:
            return []
        now = clock.now()
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(*base.MESSAGE_COLUMNS)
                .where(base.in_queue(project, queue), base.live(now),
                       messages.c.id.in_(wanted))
                .order_by(messages.c.seq)
            ).all()
        return [base.stored_message(row, now) for row in rows]

    # -- deleting ---------------------------------------------------------

    def delete(self, project: str, queue: str, message_id: str, claim_id: str | None) -> None:
        # rest-v2.md §4 table. A malformed claim id is refused before anything
        # else, even for a missing message (reference order).
        if claim_id is not None and not ids.is_valid_id(claim_id):
            raise errors.ClaimMismatch("The specified claim does not exist or has expired.")
        if not ids.is_valid_id(message_id):
            return
        now = clock.now()
        # One conditional DELETE does the allowed cases (no claim given and
        # the message not under a live claim; or the message's own claim id,
        # live or just expired). Only when it deletes nothing is the row
        # read, to tell "gone" (204) from "claimed" (403) and "not claimed"
        # (400): the refusals are rare, the deletes are the hot path.
        with self._db.write() as conn:
            deleted = conn.execute(_delete_statement(), {
                "b_project": project, "b_queue": queue, "b_now": now, "b_id": message_id,
                "b_claim": claim_id}).rowcount
            if deleted:
                metrics.after_commit(self._db, metrics.MESSAGES_DELETED, deleted)
                return
            row = conn.execute(
                sa.select(messages.c.claim_id, messages.c.claim_expires)
                .where(base.in_queue(project, queue), base.live(now),
                       messages.c.id == message_id)
            ).one_or_none()
        if row is None:
            return
        is_claimed = row.claim_id is not None and (row.claim_expires or 0) > now
        if claim_id is None or is_claimed:
            raise errors.MessageIsClaimed(
                "This message is claimed; it cannot be deleted without a valid claim ID.")
        raise errors.ClaimMismatch(
            "A claim was specified, but the message is not currently claimed.")

    def delete_each(self, project: str, queue: str,
                    deletes: list[tuple[str, str | None]]) -> list[errors.HeraldError | None]:
        """Several single-message deletes (``(message_id, claim_id)`` each, a
        coalesced batch's) with ``delete``'s outcome each: None, or the error
        ``delete`` would raise.

        The allowed cases are ``delete``'s own conditional DELETE, sent once
        with every row's parameters (one executemany: one round trip with
        psycopg's pipelining, each row planned as the single-row delete on
        the unique id index -- an ``id IN (...)`` list was planned as a scan
        of the whole queue while its statistics were stale). When every
        row was deleted, that is every outcome; otherwise each delete takes
        ``delete``'s path again, where a row deleted just now reads as gone
        (204, its outcome anyway) and a refused one gets its 403/400. A
        message named twice always takes that path, so the outcomes are
        those of running the deletes one after the other.
        """
        counts: dict[str, int] = {}
        for message_id, _ in deletes:
            counts[message_id] = counts.get(message_id, 0) + 1
        plain = [(mid, cid) for mid, cid in deletes if counts[mid] == 1 and ids.is_valid_id(mid)
                 and (cid is None or ids.is_valid_id(cid))]
        outcomes: list[errors.HeraldError | None] = [None] * len(deletes)
        if len(plain) == len(deletes):
            now = clock.now()
            with self._db.write() as conn:
                deleted = conn.execute(_delete_statement(), [
                    {"b_project": project, "b_queue": queue, "b_now": now, "b_id": mid,
                     "b_claim": cid} for mid, cid in plain]).rowcount
            metrics.after_commit(self._db, metrics.MESSAGES_DELETED, max(deleted, 0))
            if deleted == len(deletes):
                return outcomes
        for index, (message_id, claim_id) in enumerate(deletes):
            try:
                self.delete(project, queue, message_id, claim_id)
            except errors.HeraldError as exc:
                outcomes[index] = exc
        return outcomes

    def delete_many(self, project: str, queue: str, message_ids: list[str],
                    claim_ids: list[str] | None) -> None:
        wanted = [mid for mid in dict.fromkeys(message_ids or []) if ids.is_valid_id(mid)]
        with self._db.write() as conn:
            if claim_ids:
                holders: set[str] = set()
                if wanted:
                    holders = {cid for cid in conn.execute(
                        sa.select(messages.c.claim_id)
                        .where(base.in_queue(project, queue), messages.c.id.in_(wanted))
                    ).scalars() if cid}
                for cid in claim_ids:
                    if cid not in holders:
                        raise errors.BadRequest(
                            f"Claim {cid} does not exist in queue {queue} for project "
                            f"{project}")
            if wanted:
                deleted = conn.execute(sa.delete(messages).where(
                    base.in_queue(project, queue), messages.c.id.in_(wanted))).rowcount
                metrics.after_commit(self._db, metrics.MESSAGES_DELETED, max(deleted, 0))

    def release(self, project: str, queue: str, message_id: str, claim_id: str,
                delay: int) -> None:
        """Take the message out of its live claim ``claim_id``; it is claimable
        (and listed) again ``delay`` seconds from now, and not before. Its
        claim count stays as the claim left it, so ``_max_claim_count`` still
        dead-letters a message released over and over. One UPDATE on the hot
        path; only a refusal reads the row, to tell the three apart."""
        if not ids.is_valid_id(claim_id):
            raise errors.ClaimDoesNotExist.of(claim_id, queue, project)
        if not ids.is_valid_id(message_id):
            raise errors.MessageDoesNotExist.of(message_id, queue, project)
        now = clock.now()
        with self._db.write() as conn:
            released = conn.execute(_release_statement(), {
                "b_project": project, "b_queue": queue, "b_now": now, "b_id": message_id,
                "b_claim": claim_id, "b_visible": now + delay}).rowcount
            row = None if released else conn.execute(
                sa.select(messages.c.claim_id, messages.c.claim_expires)
                .where(base.in_queue(project, queue), base.live(now),
                       messages.c.id == message_id)
            ).one_or_none()
        if released:
            if delay <= 0:
                # Claimable now: long polls on the queue may take it.
                self._db.after_commit(
                    lambda: self._db.wiring.wakeups.messages_available(project, queue))
            return
        if row is None:
            raise errors.MessageDoesNotExist.of(message_id, queue, project)
        if row.claim_id is not None and (row.claim_expires or 0) > now:
            raise errors.ReleaseRefused(
                "This message is claimed by another claim; it cannot be released with "
                f"claim {claim_id}.")
        raise errors.ClaimDoesNotExist.of(claim_id, queue, project)

    def pop(self, project: str, queue: str, limit: int) -> list[dict[str, Any]]:
        now = clock.now()
        # SKIP LOCKED: concurrent poppers and claimers take disjoint rows
        # instead of queueing behind each other (rendered only on PostgreSQL;
        # SQLite's immediate transaction already serializes them).
        chosen = (sa.select(messages.c.seq)
                  .where(base.in_queue(project, queue),
                         base.from_queue_start(project, queue), base.live(now),
                         base.unclaimed(now), base.visible(now))
                  .order_by(messages.c.seq)
                  .limit(limit)
                  .with_for_update(skip_locked=True))
        with self._db.write() as conn:
            rows = conn.execute(
                sa.delete(messages)
                .where(messages.c.seq.in_(chosen))
                .returning(*base.MESSAGE_COLUMNS)
            ).all()
        rows.sort(key=lambda row: row.seq)
        if rows:
            metrics.after_commit(self._db, metrics.MESSAGES_DELETED, len(rows))
        else:
            metrics.after_commit(self._db, metrics.EMPTY_CLAIMS, 1)
        result = []
        for row in rows:
            item = base.stored_message(row, now)
            item["claim_id"] = None
            result.append(item)
        return result

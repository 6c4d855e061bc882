"""Claims of queues with message groups: which messages a claim may take.

A message's group (``messages.group_id``, ``"group"`` on the wire) orders
and serializes its claims: a group's messages are claimed in post order,
one claim may take several consecutive ones, and while any message of the
group is held by a live claim no other claim takes a message of it
(issue 23, docs/message-groups.md). Messages without a group are claimed as
on any queue.

Only queues flagged ``grouped`` (their first grouped post sets it,
``base.mark_grouped``) come here: the fast claim path (``claims``) serves
the others, so their claims pay nothing for groups.

The rule in SQL: a grouped message is claimable when no live message of its
group is held by a live claim, and no earlier live message of its group is
still delayed. Taken in position order with the claim's limit, the
claimable messages of a group are then a prefix of it: consecutive, oldest
first. Both tests are probes of the partial indexes on grouped messages
(migration 0007).

Two claimers must not both see a group free: PostgreSQL's SKIP LOCKED
would let the second skip the first's locked head and take the next one.
So the claims of one grouped queue are serialized by a transaction-level
advisory lock on the queue, taken by ``queue_settings`` (posts and the
claims of other queues do not wait for it), and its rows are locked without
SKIP LOCKED: a head locked by a concurrent delete is waited for, never
overtaken. SQLite's writers are serialized already. A grouped queue without
a dead-letter queue is then claimed by the fast path's one statement with
``claimable`` in its selection. Must not write: ``claims`` updates what
this selects.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from herald.storage import base
from herald.storage.schema import messages, queues

_peer = messages.alias("group_peer")


def queue_settings(conn: sa.Connection, project: str,
                   queue: str) -> tuple[dict[str, Any], bool] | None:
    """The queue's stored metadata and whether it is grouped; None if missing.

    On PostgreSQL the same statement takes, for a grouped queue, the lock
    that serializes its claims (a transaction-level advisory lock on the
    queue, released at commit; a claim of this queue committing meanwhile
    is waited for). The statements after it take fresh snapshots, which see
    every group the earlier claims took."""
    postgres = conn.dialect.name == "postgresql"
    row = conn.execute(_settings_statement(postgres),
                       {"b_project": project, "b_queue": queue,
                        "b_key": f"herald-group-claims/{len(project)}:{project}/{queue}"}).first()
    if row is None:
        return None
    return base.load_metadata(row.metadata), bool(row.grouped)


@functools.cache
def _settings_statement(postgres: bool) -> sa.Select[Any]:
    columns = [queues.c.metadata, queues.c.grouped]
    if postgres:
        # CASE evaluates the lock only for a grouped queue; void cast to text.
        lock = sa.func.pg_advisory_xact_lock(
            sa.func.hashtextextended(sa.bindparam("b_key"), 0), type_=sa.Text)
        columns.append(sa.case((queues.c.grouped, sa.cast(lock, sa.Text))).label("locked"))
    return sa.select(*columns).where(queues.c.project == sa.bindparam("b_project"),
                                     queues.c.name == sa.bindparam("b_queue"))


def claimable(project: Any, queue: Any, now: Any) -> sa.ColumnElement[bool]:
    """The group rule for a row of ``messages`` of (project, queue) that is
    live, unclaimed and visible: it has no group, or its group has no live
    message held by a live claim and no earlier live message still delayed.
    Arguments may be values or bound parameters."""
    same_group = sa.and_(_peer.c.project == project, _peer.c.queue == queue,
                         _peer.c.group_id == messages.c.group_id, _peer.c.expires > now)
    held = sa.exists().where(same_group, _peer.c.claim_id.is_not(None),
                             _peer.c.claim_expires > now)
    delayed_before = sa.exists().where(same_group, _peer.c.seq < messages.c.seq,
                                       _peer.c.visible_at > now)
    return sa.or_(messages.c.group_id.is_(None), sa.and_(sa.not_(held), sa.not_(delayed_before)))


@functools.cache
def _candidates_statement(postgres: bool) -> sa.Select[Any]:
    project, queue, now = sa.bindparam("b_project"), sa.bindparam("b_queue"), sa.bindparam("b_now")
    stmt = (sa.select(*messages.c)
            .where(messages.c.project == project, messages.c.queue == queue,
                   base.from_queue_start(project, queue), base.live(now),
                   base.unclaimed(now), base.visible(now), claimable(project, queue, now))
            .order_by(messages.c.seq)
            .limit(sa.bindparam("b_limit")))
    # Plain FOR UPDATE: skipping a locked row could overtake a group's head.
    return stmt.with_for_update(of=messages) if postgres else stmt


def candidates(conn: sa.Connection, project: str, queue: str, now: float,
               limit: int) -> list[Any]:
    """Up to ``limit`` claimable messages (every column) in position order,
    locked; the caller (the dead-letter path of ``claims``) claims them or
    dead-letters some in this transaction, after ``queue_settings``."""
    stmt = _candidates_statement(conn.dialect.name == "postgresql")
    return list(conn.execute(stmt, {"b_project": project, "b_queue": queue, "b_now": now,
                                    "b_limit": limit}).all())

"""Helpers shared by the storage controllers: row codecs and queue rows.

Holds what the queue, message and claim controllers all need: encoding of
message bodies and metadata for the Text columns, Client-ID normalization,
the StoredMessage shape of the RPC contract, the "live" SQL predicates, and
the lazy queue upsert. It must not open transactions of its own: callers pass
the connection of the transaction they are in.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from herald.common import timeutils
from herald.common.rpc import serializer
from herald.storage.schema import messages, queues

# Columns a StoredMessage is built from (never SELECT * : keeps rows small).
MESSAGE_COLUMNS = (
    messages.c.seq, messages.c.id, messages.c.body, messages.c.ttl, messages.c.created,
    messages.c.claim_id, messages.c.claim_expires, messages.c.claim_count,
    messages.c.checksum, messages.c.group_id,
)


def dump_body(body: Any) -> str:
    # Bodies arrive decoded (bytes from msgpack clients included); store the
    # serializer's JSON-safe form so the Text column holds plain JSON.
    return serializer.dumps(body)


def load_body(text: str) -> Any:
    return serializer.decode(json.loads(text))


def dump_metadata(metadata: dict[str, Any] | None) -> str:
    return json.dumps(metadata or {})


def load_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def normalize_client_id(client_id: str | None) -> str:
    """One spelling per client: UUIDs as 32 hex digits (dashed == undashed)."""
    if not client_id:
        return ""
    try:
        return uuid.UUID(client_id).hex
    except (ValueError, AttributeError, TypeError):
        return client_id


def live(now: float) -> sa.ColumnElement[bool]:
    """The message has not expired."""
    return messages.c.expires > now


def unclaimed(now: float) -> sa.ColumnElement[bool]:
    """The message is not held by an unexpired claim (expired claims count as released)."""
    return sa.or_(messages.c.claim_id.is_(None), messages.c.claim_expires <= now)


def claimed(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(messages.c.claim_id.is_not(None), messages.c.claim_expires > now)


def visible(now: float) -> sa.ColumnElement[bool]:
    """Out of its delay window."""
    return messages.c.visible_at <= now


def in_queue(project: str, queue: str) -> sa.ColumnElement[bool]:
    return sa.and_(messages.c.project == project, messages.c.queue == queue)


_head = messages.alias("queue_head")


def from_queue_start(project: str, queue: str) -> sa.ColumnElement[bool]:
    """``seq`` at or after the queue's first stored position: for scans of a
    queue's head in ``seq`` order (list, claim, pop), next to ``in_queue``.

    It changes no result. It gives PostgreSQL's plan a starting point: for
    a queue holding most of the table the planner reads the primary key in
    ``seq`` order from the very first row, filtering out every older row of
    every other queue (18,885 rows, 14 ms per claim on a 1,000,000-message
    queue after the benchmark's other phases; EXPLAIN ANALYZE). With this
    bound, found in one probe of (project, queue, seq), the same claim read
    10 rows in 0.35 ms."""
    first = (sa.select(sa.func.min(_head.c.seq))
             .where(_head.c.project == project, _head.c.queue == queue)
             .scalar_subquery())
    return messages.c.seq >= first


def stored_message(row: Row[Any] | Any, now: float) -> dict[str, Any]:
    """The contract's StoredMessage from a row with MESSAGE_COLUMNS."""
    live_claim = row.claim_id if (row.claim_id and (row.claim_expires or 0) > now) else None
    stored = {
        "id": row.id,
        "body": load_body(row.body),
        "ttl": int(row.ttl),
        "age": timeutils.age(row.created, now),
        "claim_id": live_claim,
        "claim_count": int(row.claim_count or 0),
        "checksum": row.checksum or None,
        "created": timeutils.isotime(row.created),
    }
    # Only messages that have a group show one: replies about the others
    # keep exactly the keys they always had (clients match on them).
    if row.group_id is not None:
        stored["group"] = row.group_id
    return stored


def mark_grouped(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Flag the queues that ``rows`` (``messages`` row dicts about to be
    inserted in this transaction) bring their first grouped message to:
    from the commit on, their claims take the group-aware path (``claims``).
    No statement when no row has a group; none either once a queue is
    flagged (the UPDATE matches nothing, and locks nothing)."""
    keys = {(row["project"], row["queue"]) for row in rows if row.get("group_id") is not None}
    if not keys:
        return
    conn.execute(sa.update(queues)
                 .where(sa.tuple_(queues.c.project, queues.c.name).in_(sorted(keys)),
                        queues.c.grouped == sa.false())
                 .values(grouped=True))


def insert_for(conn: Connection) -> Any:
    """The dialect's INSERT construct (it has ``on_conflict_do_nothing``)."""
    return _insert_of(conn.dialect.name)


def _insert_of(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@functools.cache
def _ensure_queue_statement(dialect: str) -> Any:
    # Built once per dialect, values bound at execution: building it per
    # call (values coerced, cache key computed) was a fifth of a websocket
    # subscription_create's CPU.
    return _insert_of(dialect)(queues).values(
        project=sa.bindparam("b_project"), name=sa.bindparam("b_name"),
        metadata=sa.bindparam("b_metadata"), created=sa.bindparam("b_created"),
    ).on_conflict_do_nothing(index_elements=["project", "name"]).returning(queues.c.name)


def ensure_queue(conn: Connection, project: str, name: str, metadata: dict[str, Any] | None,
                 now: float) -> bool:
    """Create the queue unless it exists (race-free); True if this call created it."""
    # RETURNING, not rowcount: INSERT rowcounts are not reliable across drivers.
    return conn.execute(_ensure_queue_statement(conn.dialect.name), {
        "b_project": project, "b_name": name, "b_metadata": dump_metadata(metadata),
        "b_created": now}).first() is not None


def queue_metadata(conn: Connection, project: str, name: str,
                   lock: bool = False) -> dict[str, Any] | None:
    """The queue's stored metadata, or None when it does not exist.

    ``lock`` (PostgreSQL) holds the queue row until commit. Posters take it so
    that message positions are committed in the order they were allocated:
    a reader paging with a marker can then never skip a message that was
    allocated a lower position but committed later.
    """
    return queues_metadata(conn, [(project, name)], lock=lock).get((project, name))


def bound_one_of(project: sa.ColumnElement[str], queue: sa.ColumnElement[str],
                 one_key: bool) -> sa.ColumnElement[bool]:
    """(project, queue) is one of the keys bound at execution
    (``one_of_params``), in a statement built once: two equalities on
    ``b_project`` and ``b_queue`` for one key (the usual case), a tuple IN
    of the expanding ``b_keys`` for several."""
    if one_key:
        return sa.and_(project == sa.bindparam("b_project"), queue == sa.bindparam("b_queue"))
    return sa.tuple_(project, queue).in_(sa.bindparam("b_keys", expanding=True))


def one_of_params(keys: Iterable[tuple[str, str]]) -> tuple[bool, dict[str, Any]]:
    """(one key?, the parameters) of a ``bound_one_of`` filter for ``keys``."""
    wanted = sorted(set(keys))
    if len(wanted) == 1:
        return True, {"b_project": wanted[0][0], "b_queue": wanted[0][1]}
    return False, {"b_keys": wanted}


@functools.cache
def _queues_metadata_statement(one_key: bool, lock: bool) -> sa.Select[Any]:
    stmt = (sa.select(queues.c.project, queues.c.name, queues.c.metadata)
            .where(bound_one_of(queues.c.project, queues.c.name, one_key))
            .order_by(queues.c.project, queues.c.name))
    return stmt.with_for_update() if lock else stmt


def queues_metadata(conn: Connection, keys: list[tuple[str, str]], lock: bool = False
                    ) -> dict[tuple[str, str], dict[str, Any]]:
    """The metadata of the existing queues among ``keys`` (project, name). One
    statement.

    ``lock`` (PostgreSQL) holds their rows until commit, taken in (project,
    name) order -- the order every poster takes queue locks in, so two
    batches cannot deadlock (see ``queue_metadata`` for why posters lock)."""
    one_key, params = one_of_params(keys)
    stmt = _queues_metadata_statement(one_key, lock and conn.dialect.name == "postgresql")
    return {(row.project, row.name): load_metadata(row.metadata)
            for row in conn.execute(stmt, params)}


def locked_queue_metadata(conn: Connection, project: str, name: str,
                          now: float) -> dict[str, Any]:
    """The queue's metadata for a poster, creating the queue if needed (lazy
    queues), with the queue row locked on PostgreSQL (see ``queue_metadata``).

    The queue usually exists: one locking SELECT. Only a miss pays the
    race-free INSERT and a second SELECT.
    """
    lock = conn.dialect.name == "postgresql"
    metadata = queue_metadata(conn, project, name, lock=lock)
    if metadata is None:
        ensure_queue(conn, project, name, None, now)
        metadata = queue_metadata(conn, project, name, lock=lock)
    return metadata or {}

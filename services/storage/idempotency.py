"""Idempotent posts: an ``Idempotency-Key`` remembered with the messages it made.

A post that carries a key (REST header ``Idempotency-Key``, websocket body
field ``idempotency_key``) is stored together with one row of
``idempotency_keys`` -- (project, queue, key) -> the message ids -- *in the
post's own transaction*. A retry of that post within ``[storage]
idempotency_window`` seconds finds the row and gets the original ids back;
nothing new is inserted and nobody is notified again.

Concurrent duplicates: the poster holds the queue row lock (PostgreSQL; an
immediate transaction on SQLite) before it looks the key up, so the second
one sees the first one's committed row. Should two transactions still race
(the lock is an optimisation of message ordering, not this module's
guarantee), the primary key makes the second INSERT fail, its transaction
rolls back with its messages, and ``MessagePoster.post`` (``posting``) retries and
finds the winner's row.

The same key with different messages is refused (409): returning the
earlier ids would silently drop the new messages.

Operation keys: every post an edge sends over the bus carries an operation
id (``RequestContext.operation_id``), and the edge re-sends a call a worker
did not answer in time to another worker (``herald.common.rpc.resend``). A
post without an Idempotency-Key is stored with a row of its operation key
(``operation_key``: a prefix no client key can have, so the two never
meet), kept ``OPERATION_WINDOW`` seconds; a re-send (``attempt`` > 1) is
then an idempotent post under that key, and gets the first send's ids if
that one committed. The messages are the same by construction, so these rows
carry a constant fingerprint instead of a hash of the bodies.

Recorded replies: an operation whose second run would answer differently
(``operations.REPLAYED``: a pop takes other messages, a create answers
"existed"...) records its reply under its operation key
(``remember_reply``, fingerprint ``REPLY_FINGERPRINT``, same window), in
the transaction of its effect; a re-send reads it back (``recorded_reply``)
instead of running again, and of two sends only one can insert the row
(the primary key), so the other rolls back with its effect
(``StorageEndpoint._replayed``). Must not commit or open transactions:
callers pass the connection of the operation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from herald.common import errors
from herald.common.rpc import serializer
from herald.storage.schema import idempotency_keys

#: How long an operation key is remembered: far longer than any edge keeps
#: re-sending ([rpc] call_timeout), far shorter than a client's key.
OPERATION_WINDOW = 300.0
#: The fingerprint of every operation key's row (see the module docstring).
OPERATION_FINGERPRINT = "operation"
#: The fingerprint of a recorded reply's row (``remember_reply``).
REPLY_FINGERPRINT = "reply"
# Clients' keys are printable ASCII (herald.common.edge.headers): a control
# character keeps the namespaces apart.
_OPERATION_PREFIX = "\x1fop:"


def operation_key(operation_id: str) -> str | None:
    """The idempotency key of an operation id (None without one)."""
    return f"{_OPERATION_PREFIX}{operation_id}" if operation_id else None


def operation_rows(project: str, queue: str, key: str, message_ids: list[str],
                   now: float) -> dict[str, Any]:
    """The row ``remember`` would insert for an operation key (for one
    multi-row INSERT with a batch's posts)."""
    return {"project": project, "queue": queue, "key": key,
            "fingerprint": OPERATION_FINGERPRINT, "message_ids": json.dumps(message_ids),
            "created": now, "expires": now + OPERATION_WINDOW}


def remember_operations(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ``operation_rows`` (raises IntegrityError when a re-send won)."""
    if rows:
        conn.execute(sa.insert(idempotency_keys), rows)


def remember_reply(conn: Connection, project: str, queue: str, operation_id: str,
                   reply: Any, now: float) -> None:
    """Record ``reply`` under the operation key (raises IntegrityError when
    another send of the operation recorded its own first)."""
    # Values as parameters of the table's one INSERT, not ``.values()``
    # coerced into a new statement per call.
    conn.execute(idempotency_keys.insert(), {
        "project": project, "queue": queue, "key": operation_key(operation_id),
        "fingerprint": REPLY_FINGERPRINT, "message_ids": "[]",
        "reply": json.dumps(serializer.encode(reply)), "created": now,
        "expires": now + OPERATION_WINDOW})


def recorded_reply(conn: Connection, project: str, queue: str, operation_id: str,
                   now: float) -> tuple[Any] | None:
    """``(reply,)`` as an earlier send recorded it, or None (none, or expired)."""
    row = conn.execute(
        sa.select(idempotency_keys.c.reply, idempotency_keys.c.expires)
        .where(_where(project, queue, operation_key(operation_id) or ""),
               idempotency_keys.c.fingerprint == REPLY_FINGERPRINT)
    ).one_or_none()
    if row is None or row.expires <= now or row.reply is None:
        return None
    return (serializer.decode(json.loads(row.reply)),)


def print_of(key: str, items: list[dict[str, Any]]) -> str:
    """The fingerprint a post under ``key`` is recorded and compared with."""
    return OPERATION_FINGERPRINT if key.startswith(_OPERATION_PREFIX) else fingerprint(items)


def window_of(key: str, client_window: float) -> float:
    """How long ``key`` is remembered (``[storage] idempotency_window`` for a
    client's key)."""
    return OPERATION_WINDOW if key.startswith(_OPERATION_PREFIX) else client_window


def fingerprint(items: list[dict[str, Any]]) -> str:
    """Of the post's messages as the edge sent them (body, ttl, delay)."""
    canonical = [{"body": serializer.encode(item.get("body")), "ttl": item.get("ttl"),
                  "delay": item.get("delay")} for item in items]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _where(project: str, queue: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(idempotency_keys.c.project == project, idempotency_keys.c.queue == queue,
                   idempotency_keys.c.key == key)


def lookup(conn: Connection, project: str, queue: str, key: str, print_: str,
           now: float) -> list[str] | None:
    """The ids an earlier post with this key made, or None (an expired row is
    deleted so the key can be used again). Raises Conflict when the earlier
    post had other messages."""
    row = conn.execute(
        sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.message_ids,
                  idempotency_keys.c.expires)
        .where(_where(project, queue, key))
    ).one_or_none()
    if row is None:
        return None
    if row.expires <= now:
        conn.execute(sa.delete(idempotency_keys).where(_where(project, queue, key)))
        return None
    if row.fingerprint != print_:
        raise errors.Conflict(
            "This Idempotency-Key was already used for a different post to this queue.")
    return list(json.loads(row.message_ids))


def remember(conn: Connection, project: str, queue: str, key: str, print_: str,
             message_ids: list[str], now: float, window: float) -> None:
    """Store the key with the post's ids (raises IntegrityError on a race)."""
    conn.execute(sa.insert(idempotency_keys).values(
        project=project, queue=queue, key=key, fingerprint=print_,
        message_ids=json.dumps(message_ids), created=now, expires=now + window))


def collect_garbage(conn: Connection, now: float) -> int:
    """Delete expired keys (lookups ignore them already)."""
    return conn.execute(
        sa.delete(idempotency_keys).where(idempotency_keys.c.expires <= now)).rowcount or 0

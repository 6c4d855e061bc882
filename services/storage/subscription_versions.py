"""The version of a (project, queue)'s subscriptions: bumped by every change.

``subscription_versions`` holds one number per (project, queue) whose
subscriptions were ever written. Every write to the ``subscriptions`` rows
of a (project, queue) -- create (and the expired duplicate it replaces),
update, confirm, delete, purge, a websocket connection's or a dead
gateway's clean-up, the expiry GC -- calls ``bump`` for the (project,
queue) keys it touched, in its own transaction, so the new number commits
or rolls back with the change. A storage worker's cache of a queue's
recipients (``herald.storage.recipients``) is good exactly while the number
is the one it read them with. Deliberately not bumped: the delivery
statistics the outbox dispatchers write to subscription rows
(``herald.storage.outbox``: attempts, last status, health): no recipient
read looks at them, and a bump per delivery would empty the cache of every
queue with a webhook.

The bump is one UPSERT for all keys (a missing row is created at 1: no row
reads as 0), in (project, queue) order, so two writes bumping the same keys
cannot deadlock. Its row lock serializes every writer of the queue's
subscriptions until it commits -- 1,000 websocket connections subscribing
to one queue at once -- so it must be the write's last statement, and it is
sent with ``Database.execute_last``: on PostgreSQL the COMMIT travels with
it, the lock held for one round trip.

Rows are never deleted: a number must never repeat for a key a worker may
still hold. Must not read or change the subscriptions themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy.engine import Connection

from herald.storage.engine import Database

Key = tuple[str, str]

#: Keys per UPSERT statement (two parameters each), well inside SQLite's
#: and PostgreSQL's parameter limits; a dead gateway's clean-up may touch
#: more queues than that.
_CHUNK = 1000


@functools.cache
def _upsert_sql(placeholder: str, count: int) -> str:
    values = ", ".join(f"({placeholder}, {placeholder}, 1)" for _ in range(count))
    return ("INSERT INTO subscription_versions (project, queue, version) VALUES " + values
            + " ON CONFLICT (project, queue)"
            " DO UPDATE SET version = subscription_versions.version + 1")


def bump(db: Database, conn: Connection, keys: Iterable[Key]) -> None:
    """Bump the version of every (project, queue) of ``keys``: the last
    statement of the current ``db.write()`` on ``conn`` (see the module
    docstring). Nothing to do for no keys."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    chunks = [wanted[i:i + _CHUNK] for i in range(0, len(wanted), _CHUNK)]
    for number, chunk in enumerate(chunks):
        sql = _upsert_sql(placeholder, len(chunk))
        params = [part for key in chunk for part in key]
        if number < len(chunks) - 1:
            conn.exec_driver_sql(sql, tuple(params))
        else:
            db.execute_last(conn, sql, params)

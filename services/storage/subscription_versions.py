"""The version of a (project, queue)'s subscriptions: bumped by every change.

A (project, queue)'s version is the sum of its ``subscription_versions``
rows (none: 0). Every write to its ``subscriptions`` rows -- create (and
the expired duplicate it replaces), update, confirm, delete, purge, a
websocket connection's or a dead gateway's clean-up, the expiry GC --
calls ``bump`` for the (project, queue) keys it touched, in its own
transaction, so the new sum commits or rolls back with the change. A
storage worker's cache of a queue's recipients
(``herald.storage.recipients``) is good exactly while the sum is the one it
read them with, from the same snapshot. Deliberately not bumped: the
delivery statistics the outbox dispatchers write to subscription rows
(``herald.storage.outbox``: attempts, last status, health): no recipient
read looks at them, and a bump per delivery would empty the cache of every
queue with a webhook.

Why a sum over shards, not one number: a bump's row lock is held until
its transaction commits, WAL flush included, so with one row per queue
the 1,000 websocket connections subscribing to a broadcast queue at once
committed one after the other (subscribing took 2-3 times as long, issue
27's "< 5 s"). A bump adds 1 to one of ``SHARDS`` rows, chosen at random,
so concurrent writers of one queue rarely wait for each other. A sum stays
exact: every committed bump adds 1, whatever order transactions commit
in, so a reader's sum changes with every change it can see.

The bump is one UPSERT for all keys (a missing row is created at 1), in
(project, queue) order on one shard, so two writes bumping the same keys
cannot deadlock; it is the write's last statement, sent with
``Database.execute_last`` (on PostgreSQL the COMMIT travels with it: the
lock is held for one round trip). Rows are never deleted: a sum must never
repeat for a key a worker may still hold. Once committed, the process's
``recipient_warmer`` is told which queues changed. Must not read or change
the subscriptions themselves.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable

from sqlalchemy.engine import Connection

from herald.storage.engine import Database

Key = tuple[str, str]

#: Rows a queue's version is spread over (see the module docstring).
SHARDS = 32

#: Keys per UPSERT statement (three parameters each), well inside SQLite's
#: and PostgreSQL's parameter limits; a dead gateway's clean-up may touch
#: more queues than that.
_CHUNK = 1000


@functools.cache
def _upsert_sql(placeholder: str, count: int) -> str:
    values = ", ".join(f"({placeholder}, {placeholder}, {placeholder}, 1)"
                       for _ in range(count))
    return ("INSERT INTO subscription_versions (project, queue, shard, version) VALUES "
            + values + " ON CONFLICT (project, queue, shard)"
            " DO UPDATE SET version = subscription_versions.version + 1")


def bump(db: Database, conn: Connection, keys: Iterable[Key]) -> None:
    """Bump the version of every (project, queue) of ``keys``: the last
    statement of the current ``db.write()`` on ``conn`` (see the module
    docstring). Nothing to do for no keys."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    # Once committed, this process reads those queues' recipients again
    # before their next post needs them (``recipient_warmer``).
    db.after_commit(lambda: db.wiring.warmer.changed(db, wanted))
    shard = random.randrange(SHARDS)  # noqa: S311 -- spreads locks, no secret
    placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    chunks = [wanted[i:i + _CHUNK] for i in range(0, len(wanted), _CHUNK)]
    for number, chunk in enumerate(chunks):
        sql = _upsert_sql(placeholder, len(chunk))
        params = [part for project, queue in chunk for part in (project, queue, shard)]
        if number < len(chunks) - 1:
            conn.exec_driver_sql(sql, tuple(params))
        else:
            db.execute_last(conn, sql, params)

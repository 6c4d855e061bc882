"""Planner statistics of the hot tables, kept fresh by the storage workers.

PostgreSQL plans every statement from its table statistics. A table that
was never analyzed (a new database; a server running with autovacuum off,
as this project's CI machines do) looks nearly empty to the planner, and
it then reads a message by id through the (project, queue, seq) index --
a scan of the whole queue, filtered by id -- instead of the unique id
index: on a queue of 50,000 messages a delete took ~1 ms of server time
instead of ~0.05 ms. Autovacuum, when it runs, analyzes a table only at its
next round (a minute by default) after 10 % of it changed, which is long
for a queue that grows by thousands of messages a second.

``refresh(db, ...)`` runs ``ANALYZE`` on each hot table whose rows changed
more than ``min_changes`` and ``fraction`` of its size since it was last
analyzed (``pg_stat_user_tables.n_mod_since_analyze``). A transaction-level
advisory lock lets one worker at a time do it; the others skip the round.
SQLite plans without such statistics: nothing to do there.

This module decides nothing about data and never changes rows.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from herald.storage.engine import Database

LOG = logging.getLogger(__name__)

#: The tables every request reads or writes.
HOT_TABLES = ("messages", "queues", "claims", "claim_history", "outbox", "subscriptions",
              "delivery_attempts", "idempotency_keys")

#: pg_advisory lock key of the refresh ("herald-statistics").
_LOCK_KEY = 0x4845_5241_4C44_5354 & 0x7FFF_FFFF_FFFF_FFFF


def stale_tables(db: Database, min_changes: int, fraction: float) -> list[str]:
    """The hot tables PostgreSQL's statistics lag behind (none on SQLite)."""
    if not db.is_postgres:
        return []
    with db.read() as conn:
        rows = conn.execute(sa.text(
            "SELECT relname, n_live_tup, n_mod_since_analyze FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname = ANY(:names)"),
            {"names": list(HOT_TABLES)}).all()
    return sorted(name for name, live, changed in rows
                  if changed >= max(min_changes, fraction * (live or 0)))


def refresh(db: Database, min_changes: int = 500, fraction: float = 0.2) -> list[str]:
    """ANALYZE the stale hot tables; returns their names (empty when none
    were stale or another worker is at it)."""
    stale = stale_tables(db, min_changes, fraction)
    if not stale:
        return []
    with db.write() as conn:
        if not conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"),
                            {"key": _LOCK_KEY}).scalar_one():
            return []
        for table in stale:  # names from HOT_TABLES only, never from input
            conn.execute(sa.text(f'ANALYZE "{table}"'))
    LOG.info("refreshed planner statistics of %s", ", ".join(stale))
    return stale

"""Planner statistics kept fresh by the workers (herald.storage.statistics).

On PostgreSQL a hot table that changed a lot since its last ANALYZE is
analyzed again, after which a message is found through the unique id index
rather than by scanning its queue. SQLite has no such statistics: nothing
is ever reported stale there.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from herald.storage import statistics
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database
from tests.contract.conftest import make_ctxt


def _stale_after_posts(database: Database) -> list[str]:
    # PostgreSQL publishes a backend's table counters within about a second.
    deadline = time.monotonic() + 10
    while True:
        stale = statistics.stale_tables(database, min_changes=500, fraction=0.2)
        if "messages" in stale or time.monotonic() > deadline:
            return stale
        time.sleep(0.2)


def test_a_queue_that_grew_gets_its_statistics_and_index_plans(
        endpoint: StorageEndpoint, database: Database) -> None:
    statistics.refresh(database)  # whatever earlier tests left
    ctxt = make_ctxt()
    ids: list[Any] = []
    for _ in range(40):
        ids += endpoint.message_post(ctxt, queue="q", body_size=10,
                                     messages=[{"body": "x" * 100, "ttl": 300}] * 20)
    if not database.is_postgres:
        assert statistics.stale_tables(database, 500, 0.2) == []
        assert statistics.refresh(database) == []
        return
    assert "messages" in _stale_after_posts(database)
    assert "messages" in statistics.refresh(database)
    assert "messages" not in statistics.stale_tables(database, 500, 0.2)
    with database.read() as conn:
        plan = "\n".join(conn.execute(sa.text(
            "EXPLAIN DELETE FROM messages WHERE project = :p AND queue = :q "
            "AND expires > 0 AND id = :id"), {"p": ctxt.project_id, "q": "q", "id": ids[7]})
            .scalars())
    assert "messages_id_key" in plan, plan

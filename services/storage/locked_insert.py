"""The PostgreSQL statement that ends a post: lock the queues, check, insert.

Positions (``messages.seq``) must commit in the order they were drawn, per
queue, or a reader paging with a marker could skip a message that drew a
lower position but committed later (``base.queue_metadata``). So a poster
holds its queues' rows locked from drawing positions until it commits, and
every other poster of those queues, on every worker, waits for it.

This one statement keeps that span short. It locks the queue rows (in
(project, name) order, as every poster does, so posters cannot deadlock),
checks with ``herald_check`` (migration 0005) that each queue still exists
with the metadata the posts were validated against, and inserts the rows in
list order, which is position order. Run with ``Database.execute_last``,
the COMMIT travels with it: the locks are held for one round trip, not for
the replies, the wake-ups of the worker's thread and the COMMIT that
followed the separate locking read and INSERT. A queue changed or deleted
meanwhile fails the statement, and the COMMIT with it
(``StatementCheckFailed``): nothing is written, and the caller checks the
posts again under the lock.

Given the pipeline stages' ``guard_sql`` (the stages did not run), the
statement also checks that they had nothing to write, without failing: it
inserts nothing when they had, and the caller, seeing fewer rows inserted
than sent, posts again with the stages. Only a post that is its
transaction's one write skips the stages, so its COMMIT then commits
nothing. Failing the statement there (``herald_check``, as before) made
PostgreSQL log an ERROR for the first post to each queue with subscribers
on each worker: the normal path of a notified queue, which operators
tailing that log must not see. A changed queue is not the normal path and
still fails the statement. A post to a queue without subscribers is this
statement alone, a transaction by itself.

Must not decide what is posted: the rows come validated from ``messages``.
"""

from __future__ import annotations

import functools
from typing import Any

from herald.storage import base

#: The ``messages`` columns of a row dict, with their SQL types.
COLUMNS = (("id", "varchar"), ("project", "varchar"), ("queue", "varchar"), ("body", "text"),
           ("ttl", "integer"), ("created", "float8"), ("expires", "float8"),
           ("visible_at", "float8"), ("client_id", "varchar"), ("claim_id", "varchar"),
           ("claim_expires", "float8"), ("claim_count", "integer"), ("checksum", "varchar"),
           ("group_id", "varchar"))

CHANGED = "a queue was changed or deleted since its metadata was read"

# The queues travel as three arrays and the rows as one array per column:
# seventeen parameters whatever the batch, so the text is constant. A
# parameter per value (a VALUES list) made psycopg parse a new ~5 KB query
# for every batch -- it caches only queries of at most 50 parameters --
# which was a fifth of a worker's time in batch posts, and PostgreSQL plan
# it anew; this one is parsed once and becomes a prepared statement. The
# column arrays go in binary (``%b``): PostgreSQL copies each element as it
# is, where a JSON document of the rows (``jsonb_to_recordset``, the round
# before) had to be written by the worker and parsed by the server while
# the queue rows were locked -- 2.3 ms against 1.0 ms for a 133-row batch.
SQL = (
    "WITH assumed AS ("
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) AS a (project, name, metadata)),"
    " locked AS MATERIALIZED ("
    " SELECT project, name, metadata FROM queues"
    " WHERE (project, name) IN (SELECT project, name FROM assumed)"
    " ORDER BY project, name FOR UPDATE)"
    f" INSERT INTO messages ({', '.join(name for name, _ in COLUMNS)})"
    f" SELECT * FROM unnest({', '.join(f'%b::{type_}[]' for _, type_ in COLUMNS)})"
    f" AS posted ({', '.join(name for name, _ in COLUMNS)})"
    " WHERE herald_check((SELECT count(*) FROM locked JOIN assumed"
    " ON locked.project = assumed.project AND locked.name = assumed.name"
    " AND locked.metadata::jsonb = assumed.metadata::jsonb)"
    f" = (SELECT count(*) FROM assumed), '{CHANGED}')"
)


@functools.cache
def _sql(guard_sql: str | None) -> str:
    """``SQL``, with the stages' guard when they did not run: false, it
    makes the statement insert nothing (one text per guard: the pipeline's
    is fixed by configuration)."""
    if guard_sql is None:
        return SQL
    return f"{SQL} AND ({guard_sql})"


def statement(metadata: dict[tuple[str, str], dict[str, Any]],
              rows: list[dict[str, Any]], guard_sql: str | None = None
              ) -> tuple[str, list[Any]]:
    """The SQL and positional parameters inserting ``rows`` (``messages``
    row dicts, in position order) into queues whose (project, name) keys
    must still have ``metadata``, and, with ``guard_sql``
    (``pipeline.guard_sql``), for which the skipped stages had nothing to
    write. The statement fails if a queue changed (``StatementCheckFailed``)
    and inserts no row if the stages had work."""
    keys = sorted(metadata)
    queues = [[project for project, _ in keys], [name for _, name in keys],
              [base.dump_metadata(metadata[key]) for key in keys]]
    # unnest returns the arrays' elements in order: position order.
    return _sql(guard_sql), queues + [[row[name] for row in rows] for name, _ in COLUMNS]

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

Must not decide what is posted: the rows come validated from ``messages``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

#: The ``messages`` columns a row dict supplies, in the statement's order;
#: the claim columns are those of an unclaimed message.
COLUMNS = ("id", "project", "queue", "body", "ttl", "created", "expires", "visible_at",
           "client_id", "checksum")
# Typed placeholders: the VALUES list is a sub-SELECT, whose column types
# are not taken from the target table (a column of NULLs would be text).
_ROW = "(%s, %s, %s, %s, %s::integer, %s::float8, %s::float8, %s::float8, %s, %s::text)"

CHANGED = "a queue was changed or deleted since its metadata was read"


@functools.lru_cache(maxsize=256)
def _sql(queues: int, rows: int) -> str:
    keys = ", ".join(["(%s, %s)"] * queues)
    assumed = ", ".join(["(%s, %s, %s::jsonb)"] * queues)
    values = ", ".join([_ROW] * rows)
    return (
        "WITH locked AS MATERIALIZED ("
        f" SELECT project, name, metadata FROM queues WHERE (project, name) IN ({keys})"
        " ORDER BY project, name FOR UPDATE)"
        f" INSERT INTO messages ({', '.join(COLUMNS)}, claim_id, claim_expires, claim_count)"
        f" SELECT posted.*, NULL, NULL, 0 FROM (VALUES {values}) AS posted"
        " WHERE herald_check((SELECT count(*) FROM locked"
        f" JOIN (VALUES {assumed}) AS assumed (project, name, metadata)"
        " ON locked.project = assumed.project AND locked.name = assumed.name"
        f" AND locked.metadata::jsonb = assumed.metadata) = %s, '{CHANGED}')"
    )


def statement(metadata: dict[tuple[str, str], dict[str, Any]],
              rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The SQL and positional parameters inserting ``rows`` (``messages``
    row dicts, in position order) into queues whose (project, name) keys
    must still have ``metadata``."""
    keys = sorted(metadata)
    params: list[Any] = [part for key in keys for part in key]
    params += [row[column] for row in rows for column in COLUMNS]
    params += [part for key in keys for part in (*key, json.dumps(metadata[key]))]
    params.append(len(keys))
    return _sql(len(keys), len(rows)), params

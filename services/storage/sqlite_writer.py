"""One writer at a time per SQLite file, queued in the process instead of in SQLite.

SQLite has one write lock per database file; ``herald.storage.engine`` opens
every write transaction with ``BEGIN IMMEDIATE`` so it takes that lock up
front. A thread that finds it taken waits in SQLite's busy handler, which
*sleeps* (1, 2, 5, 10 ... up to 100 ms between tries) rather than queueing:
with dozens of RPC threads writing at once (1,000 websocket connections
subscribing), most of the embedded process's time went to threads asleep
while the lock sat free, and subscribing 1,000 connections took 2.7 to
6.3 s. Here the threads of one process queue for a file on a Python lock
and take SQLite's lock the moment it is released.

Other processes writing the same file (a second worker on one SQLite file)
still meet SQLite's busy handler, as before. Waiting is bounded like
SQLite's busy timeout, with SQLite's own error. Reentrant: a thread that
holds the file may open another write on it (SQLite then decides, as before).

Must not open connections or transactions; ``engine.Database`` does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def writer_lock(url: URL) -> threading.RLock | None:
    """The lock of ``url``'s file (None for an in-memory database, which is
    one per connection and has no other writer to queue behind)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    key = os.path.realpath(database)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())


@contextlib.contextmanager
def holding(lock: threading.RLock | None, timeout: float) -> Iterator[None]:
    """Hold ``lock`` (if any) for the block, waiting at most ``timeout`` seconds."""
    if lock is None:
        yield
        return
    if not lock.acquire(timeout=timeout):
        # What SQLite's own busy timeout raises, wrapped as SQLAlchemy would.
        raise sa_exc.OperationalError("BEGIN IMMEDIATE", None,
                                      sqlite3.OperationalError("database is locked"))
    try:
        yield
    finally:
        lock.release()

"""SQLite's side of the storage engine (embedded mode): file, pragmas, writers.

``herald.storage.engine`` builds the engine and hands out transactions;
this module holds what only SQLite needs:

* ``prepare_path``: the database file's directory is created;
* ``install_transactions``: WAL journal, busy timeout, ``synchronous=NORMAL``,
  and write transactions opened with ``BEGIN IMMEDIATE`` (reads with a plain
  ``BEGIN``), so a write takes the file's one write lock up front and never
  fails half-way upgrading a read lock;
* ``writer_lock`` / ``holding``: one writer at a time per file, queued in
  the process instead of in SQLite.

SQLite has one write lock per database file. A thread that finds it
taken waits in SQLite's busy handler, which *sleeps* (1, 2, 5, 10 ... up to
100 ms between tries) rather than queueing: with dozens of RPC threads
writing at once (1,000 websocket connections subscribing), most of the
embedded process's time went to threads asleep while the lock sat free.
Here the threads of one process queue for a file on a Python lock and take
SQLite's lock the moment it is released.

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
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_path(url: URL) -> str | None:
    """The path of ``url``'s database file; None for an in-memory database
    or a ``file:`` URI (SQLite opens those itself)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def prepare_path(url: URL) -> None:
    """Create the database file's directory (the path is relative to the
    working directory)."""
    database = _file_path(url)
    directory = os.path.dirname(database) if database else None
    if directory:
        os.makedirs(directory, exist_ok=True)


def install_transactions(engine: Engine, write_option: str, busy_timeout_ms: int) -> None:
    """Pragmas on every connection; ``BEGIN IMMEDIATE`` for a connection whose
    execution options carry ``write_option``."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would
        # issue its own deferred BEGIN) so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            # WAL + NORMAL is durable against process crashes, which is the
            # embedded mode's failure model, at a fraction of FULL's fsyncs.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(write_option):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def writer_lock(url: URL) -> threading.RLock | None:
    """The lock of ``url``'s file (None for an in-memory database, which is
    one per connection and has no other writer to queue behind)."""
    database = _file_path(url)
    if database is None:
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

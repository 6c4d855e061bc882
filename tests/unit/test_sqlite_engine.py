"""The writers of one process queue for a SQLite file in the process
(``herald.storage.sqlite_engine``), never in SQLite's sleeping busy handler.

The engines here have SQLite's busy timeout set to 0: a thread that met
SQLite's write lock taken would fail at once with "database is locked".
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from herald.storage import engine as engine_module
from herald.storage.engine import Database, make_engine


def impatient_database(path: Path) -> Database:
    """A Database on ``path`` whose SQLite connections never wait for a lock."""
    engine = make_engine(f"sqlite:///{path}", pool_size=8)

    @sa.event.listens_for(engine, "connect")
    def _no_busy_wait(dbapi_connection, _record) -> None:  # after make_engine's PRAGMAs
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    return Database(engine)


def test_concurrent_writers_of_two_databases_on_one_file_never_meet_sqlites_lock(
        tmp_path: Path) -> None:
    first, second = (impatient_database(tmp_path / "one.sqlite") for _ in range(2))
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def writer(database: Database) -> None:
        start.wait()
        for n in range(25):
            try:
                with database.write() as conn:
                    conn.exec_driver_sql(f"INSERT INTO t VALUES ({n})")
            except Exception as exc:  # "database is locked" without the queue
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(first if i % 2 else second,))
               for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with first.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 16 * 25


def test_a_writer_waits_at_most_the_busy_timeout(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the busy timeout the waiting writer fails as SQLite would."""
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    database = impatient_database(tmp_path / "two.sqlite")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with database.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            with database.write() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    finally:
        release.set()
        holder.join()
    with database.write() as conn:  # free again
        conn.exec_driver_sql("INSERT INTO t VALUES (3)")

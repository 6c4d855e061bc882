"""Contract: a write's last statement and its COMMIT (``Database.execute_last``).

On PostgreSQL the COMMIT travels with the last statement of a write that
ends its transaction: a ``write()`` of its own, or one inside
``final_writes()`` of a shared transaction without savepoints. Whether it
did is seen from another connection before the write's block ends. A
write whose last statement is also its first runs it as a transaction by
itself, without BEGIN or COMMIT. A statement whose ``herald_check`` fails
takes its whole transaction back.
SQLite runs the statement alone and commits when the write ends.
"""

from __future__ import annotations

import tempfile

import pytest
import sqlalchemy as sa

from herald.storage.engine import Database, StatementCheckFailed
from herald.storage.schema import queues


def _insert_sql(database: Database, guarded: bool = False) -> str:
    mark = "%s" if database.is_postgres else "?"
    guard = f" WHERE herald_check({mark}, 'refused by the test')" if guarded else ""
    return (f"INSERT INTO queues (project, name, metadata, created) "
            f"SELECT {mark}, {mark}, '{{}}', 0{guard}")


def _stored(database: Database) -> set[str]:
    """The queue names committed so far, seen from a connection of its own."""
    with database.engine.connect() as other:
        return set(other.execute(sa.select(queues.c.name)
                                 .where(queues.c.project == "tx")).scalars())


def test_the_last_statement_of_a_write_commits_with_it(database: Database) -> None:
    with database.write() as conn:
        database.execute_last(conn, _insert_sql(database), ["tx", "own"])
        assert _stored(database) == ({"own"} if database.is_postgres else set())
    assert _stored(database) == {"own"}


@pytest.mark.parametrize("first", [True, False], ids=["alone", "after-a-read"])
def test_a_write_of_one_statement_is_a_transaction_by_itself(database: Database,
                                                             first: bool) -> None:
    if not database.is_postgres:
        pytest.skip("SQLite writes begin with BEGIN IMMEDIATE, always")
    with database.write() as conn, tempfile.TemporaryFile() as trace:
        # libpq's trace of the protocol messages this connection sends.
        pgconn = conn.connection.dbapi_connection.pgconn
        pgconn.trace(trace.fileno())
        try:
            if not first:
                conn.execute(sa.text("SELECT 1"))
            database.execute_last(conn, _insert_sql(database), ["tx", "one"])
        finally:
            pgconn.untrace()
        assert _stored(database) == {"one"}  # committed when it answered
        trace.seek(0)
        sent = [line for line in trace.read().decode().splitlines()
                if line.split("\t")[1:2] == ["F"]]  # frontend: what was sent
    assert any('"BEGIN' in line for line in sent) is not first
    assert any('"COMMIT"' in line for line in sent) is not first


@pytest.mark.parametrize("savepoints", [False, True], ids=["direct", "savepoints"])
def test_a_shared_transaction_commits_with_its_final_write_only(database: Database,
                                                              savepoints: bool) -> None:
    pipelined = database.is_postgres and not savepoints
    with database.shared_write(savepoints=savepoints):
        with database.write() as conn:
            database.execute_last(conn, _insert_sql(database), ["tx", "first"])
        assert _stored(database) == set()  # not the transaction's last write
        with database.final_writes(), database.write() as conn:
            database.execute_last(conn, _insert_sql(database), ["tx", "final"])
        assert _stored(database) == ({"first", "final"} if pipelined else set())
        if pipelined:
            # Anything written now would be outside the transaction.
            with pytest.raises(RuntimeError), database.write():
                pass
    assert _stored(database) == {"first", "final"}


def test_a_failed_check_takes_the_whole_transaction_back(database: Database) -> None:
    if not database.is_postgres:
        pytest.skip("herald_check is PostgreSQL's (migration 0005)")
    with pytest.raises(StatementCheckFailed, match="refused by the test"):
        with database.write() as conn:
            conn.execute(sa.insert(queues).values(project="tx", name="before", metadata="{}",
                                                  created=0))
            database.execute_last(conn, _insert_sql(database, guarded=True),
                                  ["tx", "guarded", False])
    assert _stored(database) == set()
    # A true check lets the statement and its COMMIT through.
    with database.write() as conn:
        database.execute_last(conn, _insert_sql(database, guarded=True),
                              ["tx", "guarded", True])
    assert _stored(database) == {"guarded"}


def test_a_failed_check_in_a_savepoint_fails_that_write_only(database: Database) -> None:
    if not database.is_postgres:
        pytest.skip("herald_check is PostgreSQL's (migration 0005)")
    with database.shared_write(savepoints=True):
        with database.write() as conn:
            database.execute_last(conn, _insert_sql(database), ["tx", "kept"])
        with pytest.raises(StatementCheckFailed), database.final_writes(), \
                database.write() as conn:
            database.execute_last(conn, _insert_sql(database, guarded=True),
                                  ["tx", "guarded", False])
    assert _stored(database) == {"kept"}


@pytest.mark.parametrize("first", [True, False], ids=["alone", "pipelined"])
def test_database_errors_of_the_last_statement_are_sqlalchemy_errors(
        database: Database, first: bool) -> None:
    if not database.is_postgres:
        pytest.skip("the pipeline and the autocommit statement are PostgreSQL's")

    def write(name: str) -> None:
        with database.write() as conn:
            dbapi_conn = conn.connection.dbapi_connection
            if not first:
                conn.execute(sa.text("SELECT 1"))
            try:
                database.execute_last(conn, _insert_sql(database), ["tx", name])
            finally:
                # Back to transactions of several statements, whatever happened.
                assert not dbapi_conn.autocommit

    write("twice")
    with pytest.raises(sa.exc.IntegrityError):
        write("twice")
    assert _stored(database) == {"twice"}
    # The connection went back to the pool in a usable state, and a write of
    # several statements is one transaction again.
    write("after")
    with pytest.raises(StatementCheckFailed), database.write() as conn:
        conn.execute(sa.insert(queues).values(project="tx", name="undone", metadata="{}",
                                              created=0))
        database.execute_last(conn, _insert_sql(database, guarded=True),
                              ["tx", "refused", False])
    assert _stored(database) == {"twice", "after"}

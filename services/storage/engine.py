"""Database engines and transactions for the storage workers.

``make_engine`` builds the SQLAlchemy engine from ``[storage] connection``:

* PostgreSQL: a connection pool of ``[storage] pool_size`` (sized to the
  worker's RPC executor threads, see ``herald.common.config.storage``). A
  connection is checked with a ping when it is taken from the pool only if
  it sat idle for ``PING_IDLE_SECONDS`` or more (``_install_idle_ping``): a
  database restart still costs an idle worker one failed check, not a failed
  request, while a busy worker does not pay a round trip (BEGIN and
  ``SELECT 1``) before every transaction, as ``pool_pre_ping`` would. If the
  database dies under load, the failed statement invalidates the pool.
* SQLite (embedded mode): WAL journal (readers never block the writer), a
  busy timeout, connections usable from any RPC executor thread, and write
  transactions opened with ``BEGIN IMMEDIATE``: two claimers are serialized
  by SQLite itself and never fail half-way with "database is locked" when
  upgrading a read lock; the writers of one process queue for the file in
  the process (``sqlite_engine``), not in SQLite's sleeping busy handler.
  The file path is relative to the working directory; its directory is
  created.

``Database`` hands out short transactions: ``read()`` and ``write()``.
``shared_write()`` (used by the storage endpoint's ``batch``) runs several
operations in one write transaction, with one commit for all. Inside it, on
the same thread, each ``write()`` either

* is a SAVEPOINT of that transaction (``savepoints=True``), so an operation
  that fails rolls back alone and its neighbours still commit; or
* runs directly in the transaction (``savepoints=False``): no SAVEPOINT and
  RELEASE round trips, but the first ``write()`` that fails marks the
  transaction ``failed`` and every later one raises ``SharedTransactionFailed``;
  the caller then rolls it all back and runs the operations again with
  savepoints (the endpoint's ``batch``: most batches fail nowhere).

Work that must follow the commit (waking a dispatcher) is registered with
``after_commit``; outside a shared transaction it runs at once.

``execute_last`` runs a write's last statement and, on PostgreSQL, when that
write ends its transaction (its own ``write()``, or in ``final_writes()`` of
a shared transaction without savepoints), with the COMMIT in the same round
trip (pipeline mode); as the transaction's first statement, alone in
autocommit. A statement that must not commit in some case guards itself with
``herald_check(ok, message)`` (migration 0005), which fails it and the COMMIT
behind it (``StatementCheckFailed``). Must not know about queues or messages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Connection, Engine, make_url

from herald.storage import sqlite_engine

LOG = logging.getLogger(__name__)

_WRITE_OPTION = "herald_write"
SQLITE_BUSY_TIMEOUT_MS = 30000
#: A pooled PostgreSQL connection idle at least this long is pinged before use.
PING_IDLE_SECONDS = 2.0
_IDLE_SINCE = "herald_idle_since"
#: The SQLSTATE ``herald_check`` raises (migration 0005).
CHECK_FAILED_SQLSTATE = "HR001"


def make_engine(url: str, pool_size: int = 16) -> Engine:
    """An engine for ``url`` configured as described in the module docstring."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite_engine.prepare_path(parsed)
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size, max_overflow=8, hide_parameters=True,  # see below
        )
        sqlite_engine.install_transactions(engine, _WRITE_OPTION, SQLITE_BUSY_TIMEOUT_MS)
        return engine
    engine = sa.create_engine(
        parsed,
        pool_size=pool_size,
        # Room for the worker's own threads (outbox dispatcher, expiry GC,
        # health checks) next to the RPC executor's. Errors (they are logged)
        # show no statement parameters: no message bodies, no signing secrets.
        max_overflow=max(4, pool_size // 4), hide_parameters=True,
    )
    _install_idle_ping(engine)
    return engine


def pool_size_from_conf(conf: cfg.ConfigOpts, serve_rpc: bool = True) -> int:
    """``[storage] pool_size``, or (0) one connection per thread that can run
    a storage call at once: the RPC executor's threads on a worker, the
    in-process caller's in embedded mode (``serve_rpc`` False)."""
    if conf.storage.pool_size:
        return int(conf.storage.pool_size)
    return int(conf.executor_thread_pool_size if serve_rpc else conf.rpc.client_threads)


def engine_from_conf(conf: cfg.ConfigOpts, serve_rpc: bool = True) -> Engine:
    return make_engine(conf.storage.connection,
                       pool_size=pool_size_from_conf(conf, serve_rpc))


def _install_idle_ping(engine: Engine) -> None:
    """Ping a pooled connection on checkout only if it was idle for a while."""

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        # A brand-new connection (no check-in yet) has just proven itself.
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            # The ping opened a transaction (psycopg is not in autocommit):
            # end it so the caller's BEGIN starts a fresh snapshot.
            dbapi_connection.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out another one.
            raise sa.exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


class SharedTransactionFailed(Exception):
    """A ``write()`` in a shared transaction without savepoints, after an
    earlier one failed: the transaction must be rolled back as a whole."""


class StatementCheckFailed(Exception):
    """A statement's ``herald_check`` guard was false: the statement did
    nothing, and its transaction is aborted (rolled back if its COMMIT
    travelled with it)."""


def _raise_if_check_failed(driver_error: BaseException | None) -> None:
    if getattr(driver_error, "sqlstate", None) == CHECK_FAILED_SQLSTATE:
        raise StatementCheckFailed(str(driver_error)) from driver_error


class SharedTransaction:
    """The state of one ``shared_write()``: its connection, whether its
    writes are savepoints, whether one of them failed (without), whether the
    writes running now are its last (``final_writes``) and whether one of
    those already committed it (``execute_last``)."""

    def __init__(self, conn: Connection, savepoints: bool) -> None:
        self.conn = conn
        self.savepoints = savepoints
        self.failed = False
        self.final = False
        self.committed = False
        self.writes = 0  # write() blocks entered so far, savepoints or not


class Database:
    """An engine plus the two kinds of transaction the controllers use."""

    def __init__(self, engine: Engine, wiring: Any = None) -> None:
        from herald.storage.wiring import StorageWiring  # the worker's, for the controllers
        self.engine = engine
        self.wiring: StorageWiring = wiring if wiring is not None else StorageWiring()
        self.is_postgres = engine.dialect.name == "postgresql"
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Reads on PostgreSQL run in autocommit: under READ COMMITTED every
        # statement takes its own snapshot inside a transaction too, so the
        # BEGIN and COMMIT around a read bought nothing but two round trips
        # (a list page paid three instead of one). Same pool, same
        # connections; the isolation level goes back on check-in.
        self._reads = (engine.execution_options(isolation_level="AUTOCOMMIT")
                       if self.is_postgres else engine)
        # The shared transaction of the calling thread, if any (see shared_write).
        self._local = threading.local()
        self._writer = sqlite_engine.writer_lock(engine.url) if self.is_sqlite else None

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """SQLite: queue for the file's write lock in the process (``sqlite_engine``)."""
        return sqlite_engine.holding(self._writer, SQLITE_BUSY_TIMEOUT_MS / 1000)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: a consistent snapshot on SQLite (WAL); on
        PostgreSQL autocommit, each statement with its own snapshot, as
        READ COMMITTED gives it inside a transaction anyway."""
        with self._reads.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success, rolled back on error.

        Inside ``shared_write()`` on this thread: part of the shared
        transaction instead (see the module docstring)."""
        shared: SharedTransaction | None = getattr(self._local, "shared", None)
        if shared is None:
            with self._writing(), self.engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    outer = getattr(self._local, "own_write", None)
                    self._local.own_write = conn
                    try:
                        yield conn
                    finally:
                        self._local.own_write = outer
        elif shared.savepoints:
            shared.writes += 1
            with shared.conn.begin_nested():
                yield shared.conn
        else:
            if shared.failed:
                raise SharedTransactionFailed("an earlier write of this shared "
                                              "transaction failed")
            if shared.committed:
                raise RuntimeError("a write after the one that committed its shared "
                                   "transaction (see final_writes)")
            shared.writes += 1
            try:
                yield shared.conn
            except BaseException:
                # Whatever the failed write did stays in the transaction (or,
                # on PostgreSQL, aborted it): only a rollback of it all undoes that.
                shared.failed = True
                raise

    @contextlib.contextmanager
    def shared_write(self, savepoints: bool = True) -> Iterator[SharedTransaction]:
        """One write transaction for every ``write()`` of this thread inside it.

        Committed at the end (then the ``after_commit`` callbacks run); if the
        block raises, or the commit itself fails, the exception propagates,
        everything is rolled back and the callbacks are dropped. Not reentrant."""
        assert getattr(self._local, "shared", None) is None, "shared_write is not reentrant"
        callbacks: list[Callable[[], None]] = []
        with self._writing(), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                shared = SharedTransaction(conn, savepoints)
                self._local.shared, self._local.callbacks = shared, callbacks
                try:
                    yield shared
                finally:
                    self._local.shared = self._local.callbacks = None
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a wake-up hint must not turn a commit into an error
                LOG.exception("after-commit callback failed")

    @contextlib.contextmanager
    def final_writes(self, final: bool = True) -> Iterator[None]:
        """Marks the ``write()`` calls inside as the last of this thread's
        shared transaction: ``execute_last`` may send its COMMIT. With
        ``final=False``, inside such a block: writes that are not, after
        all, followed by more. Outside a shared transaction every write()
        ends its own transaction anyway."""
        shared: SharedTransaction | None = getattr(self._local, "shared", None)
        if shared is None:
            yield
            return
        outer, shared.final = shared.final, final
        try:
            yield
        finally:
            shared.final = outer

    def execute_last(self, conn: Connection, sql: str, params: Sequence[Any],
                     commit: bool = True) -> int:
        """Execute ``sql`` (in the driver's paramstyle) as the last statement
        of the current ``write()``; nothing may be executed after it there.

        On PostgreSQL, when that write ends its transaction (see the module
        docstring), the COMMIT goes in the same round trip: the locks the
        statement takes are held for the statement and the commit's WAL
        flush only, not also while this thread waits for the interpreter
        lock to read the reply and send the COMMIT (posters' queue locks:
        docs/performance-history.md, ninth round). If nothing ran in the
        transaction before it, the statement is the whole transaction: it runs in
        autocommit, one round trip instead of the BEGIN's (psycopg waits for
        it even in a pipeline) and the statement's with the COMMIT.
        A write that does not end its transaction, or ``commit=False``, sends
        the statement by itself, and the transaction goes on as usual.

        Returns the number of rows the statement wrote. Raises
        ``StatementCheckFailed`` when the statement's ``herald_check`` was
        false, SQLAlchemy's ``DBAPIError`` for any other database error."""
        dbapi_conn = conn.connection.dbapi_connection
        if not (commit and self._ends_transaction(conn) and hasattr(dbapi_conn, "pipeline")):
            try:
                return conn.exec_driver_sql(sql, tuple(params)).rowcount
            except sa.exc.DBAPIError as exc:
                _raise_if_check_failed(exc.orig)
                raise
        if dbapi_conn.info.transaction_status.name == "IDLE":  # nothing ran yet
            return self._execute_alone(conn, sql, params)
        driver_error = conn.dialect.loaded_dbapi.Error
        try:
            with dbapi_conn.pipeline():
                result = conn.exec_driver_sql(sql, tuple(params))
                # Queued behind the statement; waits for both replies. If the
                # statement failed, the server skips the COMMIT and the
                # driver rolls the transaction back.
                dbapi_conn.commit()
        except sa.exc.DBAPIError as exc:  # a reply read early, by the statement
            _raise_if_check_failed(exc.orig)
            raise
        except driver_error as exc:  # from the commit: not wrapped by SQLAlchemy
            _raise_if_check_failed(exc)
            disconnected = conn.dialect.is_disconnect(exc, dbapi_conn, None)
            if disconnected:
                conn.invalidate(exc)
            raise sa.exc.DBAPIError.instance(sql, params, exc, driver_error,
                                             connection_invalidated=disconnected,
                                             dialect=conn.dialect) from exc
        self._committed()
        return result.context.cursor.rowcount  # the result's was read before the reply

    def _execute_alone(self, conn: Connection, sql: str, params: Sequence[Any]) -> int:
        """``sql`` as a transaction of its own (autocommit): atomic, its locks
        held until it ends, committed when it answers. Returns its rowcount."""
        dbapi_conn = conn.connection.dbapi_connection
        dbapi_conn.autocommit = True
        try:
            rowcount = conn.exec_driver_sql(sql, tuple(params)).rowcount
        except sa.exc.DBAPIError as exc:
            _raise_if_check_failed(exc.orig)
            raise
        finally:
            if not dbapi_conn.closed:  # a broken one is discarded by the pool
                dbapi_conn.autocommit = False
        self._committed()
        return rowcount

    def _committed(self) -> None:
        # The SQLAlchemy transaction around this write still "commits" when
        # it ends: the driver sees no open transaction and sends nothing.
        shared: SharedTransaction | None = getattr(self._local, "shared", None)
        if shared is not None:
            shared.committed = True

    def first_write(self) -> bool:  # the current write() is its transaction's first
        shared: SharedTransaction | None = getattr(self._local, "shared", None)
        return shared is None or shared.writes == 1

    def _ends_transaction(self, conn: Connection) -> bool:
        """Whether the current write() on ``conn`` is its transaction's last."""
        if not self.is_postgres:
            return False
        shared: SharedTransaction | None = getattr(self._local, "shared", None)
        if shared is None:
            return getattr(self._local, "own_write", None) is conn
        return shared.final and not shared.savepoints and shared.conn is conn

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current shared transaction commits, or now."""
        callbacks = getattr(self._local, "callbacks", None)
        if callbacks is None:
            callback()
        else:
            callbacks.append(callback)

    def ping(self) -> bool:
        with self.read() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar_one() == 1

    def dispose(self) -> None:
        self.engine.dispose()

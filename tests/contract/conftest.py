"""Fixtures of the storage contract suite: one endpoint per backend, a movable clock.

Every test using ``endpoint`` runs three times: on a SQLite file in
``tmp_path``, on a fresh PostgreSQL database, and with pooling on
(``sqlite-pooled``): ``[DEFAULT] pooling = true``, the main database (the
pool catalog) a SQLite file of its own, one pool registered whose database
is the one the ``database`` and ``database_url`` fixtures give, and every
queue placed on that pool before its first use (``PlacingEndpoint``). So
every operation goes through the catalog and the routing, and the tests'
own checks of the database (outbox rows, message rows) read where the
queue's data lives.

Pooling is routing, the same on every database, so one backend carries it:
SQLite's, the cheaper (the suite stays about 1.5 times as long, not twice).
The tests of ``UNPOOLED`` do not run pooled, each for its reason, and those
of ``POOLED_XFAIL`` are expected to fail pooled (open findings).

``clock`` replaces the storage workers' single time source
(``herald.storage.clock.now``) so expiry is tested by moving time, not by
sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from herald.common import config
from herald.common.context import RequestContext
from herald.storage import migrations
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database, make_engine
from herald.testing import clock as fake_clock
from herald.testing.clock import FakeClock


@pytest.fixture
def conf() -> Iterator[Any]:
    conf = config.load([])
    yield conf
    conf.clear_override("enable_checksum")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return fake_clock.install(monkeypatch)


POOLED = "sqlite-pooled"

#: Modules (``test_x``) and tests (``test_x.py::test_y``) that never run
#: pooled, and why.
UNPOOLED = {
    "test_pools": "it registers its own pools and flavors and checks where rows land",
    "test_redrive_pools": "it registers its own pools and flavors and checks where rows land",
    "test_dead_letter_pools": "it registers its own pools and flavors and checks where rows "
                              "land",
    "test_statement_counts": "it counts the statements of the unpooled path; routing adds "
                             "catalog reads",
    "test_batch.py::test_a_failing_operation_does_not_fail_its_neighbours":
        "with pooling a batch runs the per-queue way: no shared transaction to run again",
    "test_batch.py::test_a_batch_whose_rollback_fails_answers_503_never_500":
        "with pooling a batch runs the per-queue way: no shared transaction to roll back",
    "test_batch.py::test_rows_leased_to_a_local_dispatcher_are_handed_over_only_once_committed":
        "with pooling a batch runs the per-queue way: no optimistic run to roll back",
}

#: Tests whose pooled run fails today for a reason of the product's: each
#: is an open finding, marked strict so that the fix shows.
POOLED_XFAIL: dict[str, str] = {}

#: The pool every queue is placed on, and the flavor (one per project) naming it.
POOL = "contract-pool"
FLAVOR = "contract"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    test = f"{module}.py::{metafunc.function.__name__}"
    params: list[Any] = ["sqlite", "postgresql"]
    if module not in UNPOOLED and test not in UNPOOLED:
        marks = ([pytest.mark.xfail(strict=True, reason=POOLED_XFAIL[test])]
                 if test in POOLED_XFAIL else [])
        params.append(pytest.param(POOLED, marks=marks))
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Where the queues' data lives (with pooling: the pool's database)."""
    if backend.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/data/herald.sqlite"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def pooled_inner(database_url: str, conf: Any, tmp_path: Any) -> Iterator[StorageEndpoint]:
    """With pooling: the endpoint on a main database of its own, ``POOL``
    registered on ``database_url``."""
    migrations.upgrade(database_url)
    main_url = f"sqlite:///{tmp_path}/main/herald.sqlite"
    migrations.upgrade(main_url)
    main = Database(make_engine(main_url, pool_size=10))
    conf.set_override("pooling", True)
    inner = StorageEndpoint(main, conf)
    try:
        inner.pool_put(RequestContext(project_id="operator", roles=("admin",)), name=POOL,
                       uri=database_url, weight=100, flavor=None, options={})
        yield inner
    finally:
        conf.clear_override("pooling")
        inner._pools.dispose()
        main.dispose()


@pytest.fixture
def database(backend: str, database_url: str,
             request: pytest.FixtureRequest) -> Iterator[Database]:
    """The queues' database (with pooling: the pool's, the very ``Database``
    the endpoint routes to, so a test's engine events see its statements)."""
    if backend == POOLED:
        yield request.getfixturevalue("pooled_inner")._pools.database(POOL)
        return
    migrations.upgrade(database_url)
    db = Database(make_engine(database_url, pool_size=10))
    yield db
    db.dispose()


class PlacingEndpoint:
    """A pooled ``StorageEndpoint`` that places each queue on ``POOL`` before
    its first use.

    Tests create queues without a flavor (or not at all: a post creates
    one); this places ``(project, queue)`` (and a redrive's ``destination``)
    in the catalog first, creating
    the project's flavor on first sight, so the queue is created in the
    pool as a ``_flavor`` queue would be, without ``_flavor`` showing in
    its metadata. Batches are looked into: each operation's queue is placed.
    Everything else is the endpoint's own.
    """

    def __init__(self, inner: StorageEndpoint) -> None:
        self._inner = inner
        self._flavors: set[str] = set()
        self._placed: set[tuple[str, str]] = set()

    def _place(self, project: str, queue: Any) -> None:
        if not isinstance(queue, str) or (project, queue) in self._placed:
            return
        if project not in self._flavors:
            admin = RequestContext(project_id=project, roles=("admin",))
            self._inner.flavor_put(admin, name=FLAVOR, pool_list=[POOL], capabilities={})
            self._flavors.add(project)
        catalog = self._inner._pools.catalog
        if catalog.lookup(project, queue) is None:
            catalog.place(project, queue, FLAVOR)
        self._placed.add((project, queue))

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name.startswith("_") or not callable(found):
            return found

        def call(ctxt: RequestContext, *args: Any, **kwargs: Any) -> Any:
            self._place(ctxt.project_id, kwargs.get("queue"))
            # A redrive's destination is a queue too (it must share the DLQ's pool),
            # and so is a dead-letter queue named in metadata (dead letters go there).
            self._place(ctxt.project_id, kwargs.get("destination"))
            metadata = kwargs.get("metadata")
            if isinstance(metadata, dict):
                self._place(ctxt.project_id, metadata.get("_dead_letter_queue"))
            for op in kwargs.get("ops") or ():
                project = (op.get("context") or {}).get("project_id") or ""
                self._place(project, (op.get("args") or {}).get("queue"))
            return found(ctxt, *args, **kwargs)

        return call


@pytest.fixture
def endpoint(backend: str, database: Database, conf: Any, clock: FakeClock,
             request: pytest.FixtureRequest) -> Any:
    if backend == POOLED:
        return PlacingEndpoint(request.getfixturevalue("pooled_inner"))
    return StorageEndpoint(database, conf)


#: The pools of ``pooled``.
TWO_POOLS = ("pa", "pb")


@pytest.fixture
def pool_urls(database_url: str, tmp_path: Any, request: pytest.FixtureRequest
              ) -> dict[str, str]:
    """A database of its own for each of ``TWO_POOLS``, on the backend's kind."""
    if database_url.startswith("sqlite"):
        return {name: f"sqlite:///{tmp_path}/{name}/herald.sqlite" for name in TWO_POOLS}
    make = request.getfixturevalue("make_postgres_url")
    return {name: make() for name in TWO_POOLS}


@pytest.fixture
def pooled(endpoint: StorageEndpoint, conf: Any, pool_urls: dict[str, str]
           ) -> Iterator[StorageEndpoint]:
    """For the tests of placements across pools (modules of ``UNPOOLED``):
    ``endpoint`` (its database, ``database_url``, is the main one) with
    pooling on, pools ``pa`` and ``pb`` registered on ``pool_urls``, each the
    one pool of a flavor of project p1, ``on-a`` and ``on-b``."""
    admin = RequestContext(project_id="p1", roles=("admin",))
    conf.set_override("pooling", True)
    for name, url in pool_urls.items():
        endpoint.pool_put(admin, name=name, uri=url, weight=100, flavor=None, options={})
    endpoint.flavor_put(admin, name="on-a", pool_list=["pa"], capabilities={})
    endpoint.flavor_put(admin, name="on-b", pool_list=["pb"], capabilities={})
    try:
        yield endpoint
    finally:
        endpoint._pools.dispose()
        conf.clear_override("pooling")


def make_ctxt(project: str = "p1", client_id: str | None = None) -> RequestContext:
    return RequestContext(project_id=project, client_id=client_id or str(uuid.uuid4()))


@pytest.fixture
def ctxt() -> RequestContext:
    return make_ctxt()

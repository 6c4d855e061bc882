"""Fixtures of the storage contract suite: one endpoint per backend, a movable clock.

Every test using ``endpoint`` runs twice: on a SQLite file in ``tmp_path``
and on a fresh PostgreSQL database. ``clock`` replaces the storage workers'
single time source (``herald.storage.clock.now``) so expiry is tested by
moving time, not by sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from herald.common import config
from herald.common.context import RequestContext
from herald.storage import clock as storage_clock
from herald.storage import migrations
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import Database, make_engine


class FakeClock:
    def __init__(self, start: float) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture
def conf() -> Iterator[Any]:
    conf = config.load([])
    yield conf
    conf.clear_override("enable_checksum")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(storage_clock.now())
    monkeypatch.setattr(storage_clock, "now", fake)
    return fake


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/herald.sqlite"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    migrations.upgrade(database_url)
    db = Database(make_engine(database_url, pool_size=10))
    yield db
    db.dispose()


@pytest.fixture
def endpoint(database: Database, conf: Any, clock: FakeClock) -> StorageEndpoint:
    return StorageEndpoint(database, conf)


def make_ctxt(project: str = "p1", client_id: str | None = None) -> RequestContext:
    return RequestContext(project_id=project, client_id=client_id or str(uuid.uuid4()))


@pytest.fixture
def ctxt() -> RequestContext:
    return make_ctxt()

"""Pools and flavors at the storage endpoint, on SQLite and PostgreSQL: a
queue created with ``_flavor`` lives in one of the flavor's pool databases
and every operation on it runs there (the main database holds only the
catalog entry); queues without a flavor stay in the main database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from herald.common import errors
from herald.common.context import RequestContext
from herald.storage.endpoint import StorageEndpoint
from herald.storage.engine import make_engine
from tests.contract.conftest import make_ctxt
from tests.contract.test_batch import post


@pytest.fixture
def pool_url(database_url: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/pool1/herald.sqlite"
    return request.getfixturevalue("make_postgres_url")()


@pytest.fixture
def pooled(endpoint: StorageEndpoint, conf: Any, pool_url: str) -> Iterator[StorageEndpoint]:
    conf.set_override("pooling", True)
    admin = RequestContext(project_id="ops", roles=("admin",))
    endpoint.pool_put(admin, name="pool1", uri=pool_url, weight=100, flavor=None, options={})
    endpoint.flavor_put(admin, name="gold", pool_list=["pool1"], capabilities={})
    try:
        yield endpoint
    finally:
        endpoint._pools.dispose()
        conf.clear_override("pooling")


def count(url: str, table: str, **where: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        tbl = sa.Table(table, sa.MetaData(), autoload_with=engine)
        stmt = sa.select(sa.func.count()).select_from(tbl)
        for column, value in where.items():
            stmt = stmt.where(tbl.c[column] == value)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    finally:
        engine.dispose()


def test_flavored_queue_is_stored_in_its_pool(pooled: StorageEndpoint, database_url: str,
                                              pool_url: str) -> None:
    ctxt = make_ctxt()
    assert pooled.queue_create(ctxt, queue="gq", metadata={"_flavor": "gold"}) is True
    ids = pooled.message_post(ctxt, queue="gq", messages=[{"body": 1, "ttl": 300},
                                                          {"body": 2, "ttl": 300}])
    assert count(pool_url, "messages", queue="gq") == 2
    assert count(database_url, "messages", queue="gq") == 0
    assert count(database_url, "catalog", queue="gq") == 1
    # Every operation finds it there.
    assert pooled.queue_get_metadata(ctxt, queue="gq") == {"_flavor": "gold"}
    assert [m["body"] for m in pooled.message_list(ctxt, queue="gq", echo=True)["messages"]
            ] == [1, 2]
    claim = pooled.claim_create(ctxt, queue="gq", ttl=60, grace=60, limit=1)
    assert [m["id"] for m in claim["messages"]] == ids[:1]
    assert pooled.claim_get(ctxt, queue="gq", claim_id=claim["claim_id"])["id"]
    assert pooled.queue_stats(ctxt, queue="gq")["total"] == 2
    sub = pooled.subscription_create(ctxt, queue="gq", subscriber="http://127.0.0.1:9/x",
                                     ttl=3600, options={})
    assert count(pool_url, "subscriptions", queue="gq") == 1
    pooled.subscription_confirm(ctxt, queue="gq", subscription_id=sub["subscription_id"],
                                confirmed=True)
    assert pooled.subscription_get(ctxt, queue="gq", subscription_id=sub["subscription_id"]
                                   )["confirmed"] is True
    pooled.message_delete(ctxt, queue="gq", message_id=ids[1])
    assert count(pool_url, "messages", queue="gq") == 1
    # Listing merges the main database and the pools.
    pooled.queue_create(ctxt, queue="aa", metadata={})
    pooled.queue_create(ctxt, queue="zz", metadata={})
    listed = pooled.queue_list(ctxt, limit=10, with_count=True)
    assert [q["name"] for q in listed["queues"]] == ["aa", "gq", "zz"]
    assert listed["count"] == 3
    assert [q["name"] for q in pooled.queue_list(ctxt, marker="aa", limit=1)["queues"]
            ] == ["gq"]
    # Delete removes it from the pool and from the catalog.
    pooled.queue_delete(ctxt, queue="gq")
    assert count(pool_url, "messages", queue="gq") == 0
    assert count(database_url, "catalog", queue="gq") == 0


def test_unflavored_queues_stay_in_the_main_database(pooled: StorageEndpoint,
                                                     database_url: str, pool_url: str) -> None:
    ctxt = make_ctxt()
    pooled.message_post(ctxt, queue="plain", messages=[{"body": 1, "ttl": 300}])
    assert count(database_url, "messages", queue="plain") == 1
    assert count(pool_url, "messages", queue="plain") == 0
    # A later PUT with _flavor does not move an existing queue.
    assert pooled.queue_create(ctxt, queue="plain", metadata={"_flavor": "gold"}) is False
    assert count(database_url, "catalog", queue="plain") == 0


def test_unknown_flavor_is_refused(pooled: StorageEndpoint) -> None:
    with pytest.raises(errors.BadRequest, match="Flavor silver does not exist"):
        pooled.queue_create(make_ctxt(), queue="q", metadata={"_flavor": "silver"})


def test_pool_admin_operations(pooled: StorageEndpoint, pool_url: str) -> None:
    admin = RequestContext(project_id="ops", roles=("admin",))
    assert pooled.pool_get(admin, name="pool1", detailed=True) == {
        "name": "pool1", "uri": pool_url, "weight": 100, "flavor": "gold", "options": {}}
    with pytest.raises(errors.Conflict):
        pooled.pool_put(admin, name="pool2", uri=pool_url, weight=1, flavor=None, options={})
    with pytest.raises(errors.BadRequest, match="cannot connect"):
        pooled.pool_put(admin, name="pool2", uri="postgresql+psycopg://nobody@127.0.0.1:1/x",
                        weight=1, flavor=None, options={})
    with pytest.raises(errors.Forbidden):
        pooled.pool_delete(admin, name="pool1")  # the last pool of gold
    ctxt = make_ctxt()
    pooled.queue_create(ctxt, queue="gq", metadata={"_flavor": "gold"})
    pooled.flavor_delete(admin, name="gold")
    with pytest.raises(errors.Conflict, match="holds 1 queue"):
        pooled.pool_delete(admin, name="pool1")
    pooled.queue_delete(ctxt, queue="gq")
    pooled.pool_delete(admin, name="pool1")
    assert pooled.pool_list(admin, limit=10) == []


def test_pooling_off_ignores_the_catalog(endpoint: StorageEndpoint, database_url: str) -> None:
    ctxt = make_ctxt()
    assert endpoint.queue_create(ctxt, queue="q", metadata={"_flavor": "whatever"}) is True
    endpoint.message_post(ctxt, queue="q", messages=[{"body": 1, "ttl": 300}])
    assert count(database_url, "messages", queue="q") == 1


def test_a_failing_batch_operation_never_repeats_a_pooled_write(pooled: StorageEndpoint,
                                                                conf: Any,
                                                                pool_url: str) -> None:
    """A pool's database commits its operations on its own, outside the
    batch's shared transaction: a failure elsewhere in the batch must not
    make them run twice."""
    ctxt = make_ctxt()
    pooled.queue_create(ctxt, queue="gq", metadata={"_flavor": "gold"})
    too_big = conf.limits.max_messages_post_size + 1
    replies = pooled.batch(make_ctxt(""), ops=[
        post(ctxt, "gq", "pooled"), post(ctxt, "fresh", "refused", size=too_big),
        post(ctxt, "main", "kept")])
    assert "result" in replies[0] and "result" in replies[2]
    assert "error" in replies[1]
    assert count(pool_url, "messages", queue="gq") == 1

"""Pools and flavors at the storage endpoint, on SQLite and PostgreSQL: a
queue created with ``_flavor`` lives in one of the flavor's pool databases
and every operation on it runs there (the main database holds only the
catalog entry); queues without a flavor stay in the main database.

Tenancy (``herald.storage.pools``): pools are global, flavors and which pools
they have are per project, so every flavor call and a pool's ``flavor`` are
the caller's project's, whatever another project names the same way; and
migration 0006 gives each existing flavor and pool membership to the project
that created the flavor."""

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


#: The project of ``make_ctxt()``'s queues, whose admin makes the flavor.
ADMIN = RequestContext(project_id="p1", roles=("admin",))


@pytest.fixture
def pooled(endpoint: StorageEndpoint, conf: Any, pool_url: str) -> Iterator[StorageEndpoint]:
    conf.set_override("pooling", True)
    admin = ADMIN
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
    # Delete removes its messages from the pool; its subscription outlives it
    # (as without pooling), so the catalog keeps the placement that finds it.
    pooled.queue_delete(ctxt, queue="gq")
    assert count(pool_url, "messages", queue="gq") == 0
    assert count(database_url, "catalog", queue="gq") == 1
    assert pooled.subscription_get(ctxt, queue="gq", subscription_id=sub["subscription_id"]
                                   )["id"] == sub["subscription_id"]
    # Once nothing of the queue is left, a delete removes the placement.
    pooled.subscription_delete(ctxt, queue="gq", subscription_id=sub["subscription_id"])
    pooled.queue_delete(ctxt, queue="gq")
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
    admin = ADMIN
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


# -- tenancy: flavors per project, pools global ----------------------------------

OTHER_ADMIN = RequestContext(project_id="p2", roles=("admin",))


@pytest.fixture
def second_pool(pooled: StorageEndpoint, database_url: str, tmp_path: Any,
                request: pytest.FixtureRequest) -> str:
    """``pool2``, registered by p2's admin (pools are global: any admin may)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/pool2/herald.sqlite"
    else:
        url = request.getfixturevalue("make_postgres_url")()
    pooled.pool_put(OTHER_ADMIN, name="pool2", uri=url, weight=1, flavor=None, options={})
    return url


def test_another_projects_flavor_does_not_exist(pooled: StorageEndpoint) -> None:
    with pytest.raises(errors.NotFound):
        pooled.flavor_get(OTHER_ADMIN, name="gold")
    assert pooled.flavor_list(OTHER_ADMIN, limit=10, detailed=True) == []
    with pytest.raises(errors.NotFound):
        pooled.flavor_update(OTHER_ADMIN, name="gold", pool_list=["pool1"])
    pooled.flavor_delete(OTHER_ADMIN, name="gold")  # p2 has no gold: nothing happens
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool1"]
    with pytest.raises(errors.BadRequest, match="Flavor gold does not exist"):
        pooled.queue_create(make_ctxt("p2"), queue="q", metadata={"_flavor": "gold"})
    assert pooled.queue_get_metadata(make_ctxt("p2"), queue="q") is None


def test_two_projects_flavors_of_one_name_are_two_flavors(
        pooled: StorageEndpoint, database_url: str, pool_url: str, second_pool: str) -> None:
    pooled.flavor_put(OTHER_ADMIN, name="gold", pool_list=["pool2"], capabilities={})
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool1"]
    assert pooled.flavor_get(OTHER_ADMIN, name="gold")["pool_list"] == ["pool2"]
    # Each project's queues go to its own flavor's pools.
    for project in ("p1", "p2"):
        ctxt = make_ctxt(project)
        pooled.queue_create(ctxt, queue="gq", metadata={"_flavor": "gold"})
        pooled.message_post(ctxt, queue="gq", messages=[{"body": project, "ttl": 300}])
    assert count(pool_url, "messages", project="p1", queue="gq") == 1
    assert count(pool_url, "messages", project="p2", queue="gq") == 0
    assert count(second_pool, "messages", project="p2", queue="gq") == 1
    # Deleting one leaves the other.
    pooled.flavor_delete(OTHER_ADMIN, name="gold")
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool1"]
    assert [f["name"] for f in pooled.flavor_list(ADMIN, limit=10)] == ["gold"]


def test_flavors_of_two_projects_may_share_a_pool(pooled: StorageEndpoint,
                                                  pool_url: str) -> None:
    pooled.flavor_put(OTHER_ADMIN, name="silver", pool_list=["pool1"], capabilities={})
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool1"]
    assert pooled.flavor_get(OTHER_ADMIN, name="silver")["pool_list"] == ["pool1"]
    # Each project sees the pool in its own flavor.
    assert pooled.pool_get(ADMIN, name="pool1")["flavor"] == "gold"
    assert pooled.pool_get(OTHER_ADMIN, name="pool1")["flavor"] == "silver"
    ctxt = make_ctxt("p2")
    pooled.queue_create(ctxt, queue="sq", metadata={"_flavor": "silver"})
    pooled.message_post(ctxt, queue="sq", messages=[{"body": 1, "ttl": 300}])
    assert count(pool_url, "messages", project="p2", queue="sq") == 1


def test_a_pools_flavor_is_the_readers_projects(pooled: StorageEndpoint,
                                                pool_url: str) -> None:
    assert pooled.pool_get(OTHER_ADMIN, name="pool1", detailed=True) == {
        "name": "pool1", "uri": pool_url, "weight": 100, "flavor": None, "options": {}}
    assert [p["flavor"] for p in pooled.pool_list(OTHER_ADMIN, limit=10)] == [None]
    # p2's changes to the pool's flavor are p2's: p1's flavor keeps the pool.
    assert pooled.pool_update(OTHER_ADMIN, name="pool1", changes={"flavor": None}
                              )["flavor"] is None
    assert pooled.pool_update(OTHER_ADMIN, name="pool1", changes={"flavor": "silver"}
                              )["flavor"] == "silver"
    pooled.pool_put(OTHER_ADMIN, name="pool1", uri=pool_url, weight=100, flavor=None,
                    options={})
    assert pooled.pool_get(ADMIN, name="pool1")["flavor"] == "gold"
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool1"]
    # The pool itself is global: p2's admin tunes it for everyone.
    pooled.pool_update(OTHER_ADMIN, name="pool1", changes={"weight": 7})
    assert pooled.pool_get(ADMIN, name="pool1")["weight"] == 7


def test_a_pool_another_projects_flavor_uses_is_not_deleted(
        pooled: StorageEndpoint, second_pool: str) -> None:
    # pool1 is not gold's last pool and holds no queue: only p1's use of it
    # stops p2's admin.
    pooled.flavor_put(ADMIN, name="gold", pool_list=["pool1", "pool2"], capabilities={})
    with pytest.raises(errors.Conflict, match="another project"):
        pooled.pool_delete(OTHER_ADMIN, name="pool1")
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool1", "pool2"]
    # p1's own admin may: the pool leaves p1's flavor with it.
    pooled.pool_delete(ADMIN, name="pool1")
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == ["pool2"]


def test_flavor_put_moves_a_pool_only_within_its_project(pooled: StorageEndpoint) -> None:
    pooled.flavor_put(OTHER_ADMIN, name="silver", pool_list=["pool1"], capabilities={})
    pooled.flavor_put(ADMIN, name="bronze", pool_list=["pool1"], capabilities={})
    # One flavor per pool within a project (the pool shows one flavor): p1's
    # gold lost it to p1's bronze; p2's silver kept it.
    assert pooled.flavor_get(ADMIN, name="gold")["pool_list"] == []
    assert pooled.flavor_get(ADMIN, name="bronze")["pool_list"] == ["pool1"]
    assert pooled.flavor_get(OTHER_ADMIN, name="silver")["pool_list"] == ["pool1"]


def test_a_topic_uses_its_projects_flavors(pooled: StorageEndpoint, pool_url: str) -> None:
    # herald.api.handlers.topics stores p1's topics under "p1" + "\x1f" + a suffix.
    topics = make_ctxt("p1\x1ftopics")
    assert pooled.queue_create(topics, queue="t", metadata={"_flavor": "gold"}) is True
    pooled.message_post(topics, queue="t", messages=[{"body": 1, "ttl": 300}])
    assert count(pool_url, "messages", project="p1\x1ftopics", queue="t") == 1
    with pytest.raises(errors.BadRequest, match="Flavor gold does not exist"):
        pooled.queue_create(make_ctxt("p2\x1ftopics"), queue="t",
                            metadata={"_flavor": "gold"})


def test_migration_0006_gives_flavors_to_their_projects(database_url: str) -> None:
    from herald.storage import migrations

    migrations.upgrade(database_url, "0005")
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            for name, flavor in (("pa", "gold"), ("pb", "gold"), ("pc", "ghost"), ("pd", None)):
                conn.execute(sa.text(
                    "INSERT INTO pools (name, uri, weight, flavor, options, created) "
                    "VALUES (:n, :u, 1, :f, '{}', 1.0)"),
                    {"n": name, "u": f"sqlite:///{name}", "f": flavor})
            conn.execute(sa.text("INSERT INTO flavors (name, project, capabilities, created) "
                                 "VALUES ('gold', 'p1', '{}', 1.0)"))
        migrations.upgrade(database_url)
        with engine.begin() as conn:
            rows = conn.execute(sa.text(
                "SELECT project, pool, flavor FROM flavor_pools ORDER BY pool")).all()
            assert [tuple(r) for r in rows] == [("p1", "pa", "gold"), ("p1", "pb", "gold")]
            # The key is (project, name) now: p2 may have a gold of its own.
            conn.execute(sa.text("INSERT INTO flavors (project, name, capabilities, created) "
                                 "VALUES ('p2', 'gold', '{}', 2.0)"))
            columns = {c["name"] for c in sa.inspect(conn).get_columns("pools")}
            assert "flavor" not in columns
        migrations_downgrade(database_url, "0005")
        with engine.begin() as conn:
            assert [tuple(r) for r in conn.execute(sa.text(
                "SELECT name, project FROM flavors"))] == [("gold", "p1")]
            assert [tuple(r) for r in conn.execute(sa.text(
                "SELECT name, flavor FROM pools ORDER BY name"))] == [
                ("pa", "gold"), ("pb", "gold"), ("pc", None), ("pd", None)]
    finally:
        engine.dispose()


def migrations_downgrade(url: str, revision: str) -> None:
    from alembic import command

    from herald.storage import migrations

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            config = migrations.alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()

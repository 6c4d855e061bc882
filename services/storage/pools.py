"""Pools and flavors: storage shards and how queues are placed on them.

A **pool** is an additional database (its ``uri`` is a SQLAlchemy URL,
migrated to Herald's schema when registered); a **flavor** names a group of
pools. A queue created with ``_flavor`` metadata is placed on one of the
flavor's pools (weighted random choice) and from then on every operation on
it runs against that pool's database. The placement is the **catalog**: a
table in the main database mapping ``(project, queue)`` to a pool; queues
without an entry live in the main database. The tables of this module live
only in the main database (migration 0004).

``Router`` gives the storage endpoint controllers that route by the
``(project, queue)`` of each call (``routed(ControllerClass)``); with
``[DEFAULT] pooling`` off it hands out the main database's controllers and
never reads the catalog. Engines are kept per pool for the worker's life.

Not here: the admin API's HTTP shapes (``herald.api.handlers.pools``) and
policy (the edge checks the admin role). Background jobs (expiry GC, outbox
dispatch) of pool databases are the worker's.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from herald.common import errors
from herald.storage import clock, migrations
from herald.storage.engine import Database, make_engine, pool_size_from_conf

LOG = logging.getLogger(__name__)

_meta = sa.MetaData()

pools = sa.Table(
    "pools",
    _meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("uri", sa.String(255), nullable=False, unique=True),
    sa.Column("weight", sa.BigInteger, nullable=False),
    sa.Column("flavor", sa.String(255), nullable=True),
    sa.Column("options", sa.Text, nullable=False, default="{}"),
    sa.Column("created", sa.Float(precision=53), nullable=False),
)

flavors = sa.Table(
    "flavors",
    _meta,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("project", sa.String(300), nullable=False),
    sa.Column("capabilities", sa.Text, nullable=False, default="{}"),
    sa.Column("created", sa.Float(precision=53), nullable=False),
)

catalog = sa.Table(
    "catalog",
    _meta,
    sa.Column("project", sa.String(300), primary_key=True),
    sa.Column("queue", sa.String(64), primary_key=True),
    sa.Column("pool", sa.String(64), nullable=False),
    sa.Index("ix_catalog_pool", "pool"),
)

#: What every Herald store offers (rest-v2.md §8 lists the names).
CAPABILITIES = ["FIFO", "CLAIMS", "DURABILITY", "AOD", "HIGH_THROUGHPUT"]


def _pool_row(row: Any, detailed: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"name": row.name, "uri": row.uri, "weight": row.weight,
                            "flavor": row.flavor}
    if detailed:
        item["options"] = json.loads(row.options or "{}")
    return item


class PoolCatalog:
    """The admin operations on pools and flavors (main database)."""

    def __init__(self, db: Database, databases: Callable[[str], Database],
                 forget: Callable[[str], None]) -> None:
        self._db = db
        self._databases = databases
        self._forget = forget

    # -- pools ------------------------------------------------------------

    def pool_list(self, marker: str | None, limit: int, detailed: bool) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            stmt = sa.select(pools).order_by(pools.c.name).limit(limit)
            if marker:
                stmt = stmt.where(pools.c.name > marker)
            return [_pool_row(row, detailed) for row in conn.execute(stmt)]

    def pool_get(self, name: str, detailed: bool) -> dict[str, Any]:
        with self._db.read() as conn:
            row = conn.execute(sa.select(pools).where(pools.c.name == name)).first()
        if row is None:
            raise errors.NotFound(f"Pool {name} does not exist")
        return _pool_row(row, detailed)

    def _check_reachable(self, uri: str) -> None:
        # Registering a pool migrates it: proves the URL works and leaves a
        # database that can take queues at once.
        try:
            migrations.upgrade(uri)
        except Exception as exc:
            LOG.warning("pool database %s is not usable: %s", uri, exc)
            raise errors.BadRequest(f"cannot connect to {uri}") from exc

    def pool_put(self, name: str, uri: str, weight: int, flavor: str | None,
                 options: dict[str, Any]) -> None:
        """Create or overwrite a pool."""
        with self._db.read() as conn:
            other = conn.execute(sa.select(pools.c.name).where(
                pools.c.uri == uri, pools.c.name != name)).first()
        if other is not None:
            raise errors.Conflict(f"The URI {uri} is used by pool {other.name}.")
        self._check_reachable(uri)
        values = {"uri": uri, "weight": weight, "flavor": flavor or None,
                  "options": json.dumps(options or {})}
        with self._db.write() as conn:
            updated = conn.execute(sa.update(pools).where(pools.c.name == name)
                                   .values(**values)).rowcount
            if not updated:
                conn.execute(sa.insert(pools).values(name=name, created=clock.now(), **values))
        self._forget(name)

    def pool_update(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        current = self.pool_get(name, detailed=True)
        if "uri" in changes and changes["uri"] != current["uri"]:
            with self._db.read() as conn:
                other = conn.execute(sa.select(pools.c.name).where(
                    pools.c.uri == changes["uri"], pools.c.name != name)).first()
            if other is not None:
                raise errors.Conflict(f"The URI {changes['uri']} is used by pool {other.name}.")
            self._check_reachable(changes["uri"])
        values: dict[str, Any] = {}
        for key in ("uri", "weight"):
            if key in changes:
                values[key] = changes[key]
        if "flavor" in changes:
            values["flavor"] = changes["flavor"] or None
        if "options" in changes:
            values["options"] = json.dumps(changes["options"] or {})
        with self._db.write() as conn:
            conn.execute(sa.update(pools).where(pools.c.name == name).values(**values))
        self._forget(name)
        return self.pool_get(name, detailed=True)

    def pool_delete(self, name: str) -> None:
        with self._db.write() as conn:
            row = conn.execute(sa.select(pools).where(pools.c.name == name)).first()
            if row is None:
                return
            if row.flavor is not None:
                siblings = conn.execute(sa.select(sa.func.count()).select_from(pools).where(
                    pools.c.flavor == row.flavor)).scalar_one()
                flavor_exists = conn.execute(sa.select(flavors.c.name).where(
                    flavors.c.name == row.flavor)).first() is not None
                if siblings <= 1 and flavor_exists:
                    raise errors.Forbidden(f"Pool {name} is the last pool of flavor "
                                           f"{row.flavor}; delete the flavor first.")
            holds = conn.execute(sa.select(sa.func.count()).select_from(catalog).where(
                catalog.c.pool == name)).scalar_one()
            if holds:
                # Forgetting the placement would silently hide the queues'
                # messages (they stay in the pool's database).
                raise errors.Conflict(f"Pool {name} still holds {holds} queue(s); delete "
                                      "them first.")
            conn.execute(sa.delete(pools).where(pools.c.name == name))
        self._forget(name)

    # -- flavors ----------------------------------------------------------

    def _pool_names(self, conn: sa.Connection, flavor: str) -> list[str]:
        return [row.name for row in conn.execute(
            sa.select(pools.c.name).where(pools.c.flavor == flavor).order_by(pools.c.name))]

    def _flavor_doc(self, conn: sa.Connection, row: Any, detailed: bool = True
                    ) -> dict[str, Any]:
        item: dict[str, Any] = {"name": row.name}
        if detailed:
            item["pool_list"] = self._pool_names(conn, row.name)
            item["capabilities"] = list(CAPABILITIES)
        return item

    def flavor_list(self, project: str, marker: str | None, limit: int,
                    detailed: bool) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            stmt = (sa.select(flavors).where(flavors.c.project == project)
                    .order_by(flavors.c.name).limit(limit))
            if marker:
                stmt = stmt.where(flavors.c.name > marker)
            return [self._flavor_doc(conn, row, detailed) for row in conn.execute(stmt)]

    def flavor_get(self, name: str) -> dict[str, Any]:
        with self._db.read() as conn:
            row = conn.execute(sa.select(flavors).where(flavors.c.name == name)).first()
            if row is None:
                raise errors.NotFound(f"Flavor {name} does not exist")
            return self._flavor_doc(conn, row)

    def _assign(self, conn: sa.Connection, name: str, pool_list: list[str]) -> None:
        known = {row.name for row in conn.execute(
            sa.select(pools.c.name).where(pools.c.name.in_(pool_list)))}
        unknown = sorted(set(pool_list) - known)
        if unknown:
            raise errors.BadRequest(f"Pools {unknown} do not exist.")
        conn.execute(sa.update(pools).where(pools.c.flavor == name,
                                            pools.c.name.not_in(pool_list))
                     .values(flavor=None))
        conn.execute(sa.update(pools).where(pools.c.name.in_(pool_list)).values(flavor=name))

    def flavor_put(self, project: str, name: str, pool_list: list[str],
                   capabilities: dict[str, Any]) -> None:
        with self._db.write() as conn:
            self._assign(conn, name, pool_list)
            conn.execute(sa.delete(flavors).where(flavors.c.name == name))
            conn.execute(sa.insert(flavors).values(
                name=name, project=project, capabilities=json.dumps(capabilities or {}),
                created=clock.now()))

    def flavor_update(self, name: str, pool_list: list[str]) -> dict[str, Any]:
        with self._db.write() as conn:
            row = conn.execute(sa.select(flavors).where(flavors.c.name == name)).first()
            if row is None:
                raise errors.NotFound(f"Flavor {name} does not exist")
            self._assign(conn, name, pool_list)
        return self.flavor_get(name)

    def flavor_delete(self, name: str) -> None:
        with self._db.write() as conn:
            conn.execute(sa.update(pools).where(pools.c.flavor == name).values(flavor=None))
            conn.execute(sa.delete(flavors).where(flavors.c.name == name))

    # -- placement ----------------------------------------------------------

    def place(self, project: str, queue: str, flavor: str) -> str:
        """Put a new queue on one of ``flavor``'s pools; its pool name."""
        with self._db.write() as conn:
            existing = conn.execute(sa.select(catalog.c.pool).where(
                catalog.c.project == project, catalog.c.queue == queue)).first()
            if existing is not None:
                return existing.pool
            if conn.execute(sa.select(flavors.c.name).where(
                    flavors.c.name == flavor)).first() is None:
                raise errors.BadRequest(f"Flavor {flavor} does not exist.")
            candidates = conn.execute(sa.select(pools.c.name, pools.c.weight).where(
                pools.c.flavor == flavor, pools.c.weight > 0)).all()
            if not candidates:
                raise errors.BadRequest(f"Flavor {flavor} has no pool that takes queues.")
            chosen = random.choices([c.name for c in candidates],
                                    weights=[c.weight for c in candidates])[0]
            conn.execute(sa.insert(catalog).values(project=project, queue=queue, pool=chosen))
            return chosen

    def lookup(self, project: str, queue: str) -> str | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(catalog.c.pool).where(
                catalog.c.project == project, catalog.c.queue == queue)).first()
        return None if row is None else row.pool

    def unplace(self, project: str, queue: str) -> None:
        with self._db.write() as conn:
            conn.execute(sa.delete(catalog).where(catalog.c.project == project,
                                                  catalog.c.queue == queue))

    def pool_uri(self, name: str) -> str:
        with self._db.read() as conn:
            row = conn.execute(sa.select(pools.c.uri).where(pools.c.name == name)).first()
        if row is None:
            raise errors.ServiceUnavailable(f"Pool {name} of this queue is not registered.")
        return row.uri

    def pool_names(self) -> list[str]:
        with self._db.read() as conn:
            return [row.name for row in conn.execute(sa.select(pools.c.name))]


class Router:
    """Databases per pool and controllers routed by ``(project, queue)``."""

    def __init__(self, db: Database, conf: cfg.ConfigOpts) -> None:
        self.main = db
        self._conf = conf
        self._lock = threading.Lock()
        self._databases: dict[str, Database] = {}
        self._controllers: dict[tuple[int, type], Any] = {}
        self.catalog = PoolCatalog(db, self.database, self._forget)

    @property
    def enabled(self) -> bool:
        return bool(self._conf.pooling)

    def database(self, pool: str) -> Database:
        with self._lock:
            db = self._databases.get(pool)
        if db is not None:
            return db
        uri = self.catalog.pool_uri(pool)
        with self._lock:
            db = self._databases.get(pool)
            if db is None:
                db = Database(make_engine(uri, pool_size=pool_size_from_conf(self._conf)))
                self._databases[pool] = db
            return db

    def _forget(self, pool: str) -> None:
        # The pool's URI may have changed: build its engine again on next use.
        with self._lock:
            db = self._databases.pop(pool, None)
            self._controllers = {key: value for key, value in self._controllers.items()
                                 if db is None or key[0] != id(db)}
        if db is not None:
            db.dispose()

    def databases(self) -> list[Database]:
        """The main database and every registered pool's."""
        found = [self.main]
        if self.enabled:
            found.extend(self.database(name) for name in self.catalog.pool_names())
        return found

    def db_for(self, project: str, queue: str) -> Database:
        if not self.enabled:
            return self.main
        pool = self.catalog.lookup(project, queue)
        return self.main if pool is None else self.database(pool)

    def controller(self, cls: type, db: Database) -> Any:
        key = (id(db), cls)
        with self._lock:
            found = self._controllers.get(key)
            if found is None:
                found = cls(db, self._conf)
                self._controllers[key] = found
            return found

    def routed(self, cls: type) -> Any:
        return _Routed(self, cls)

    def dispose(self) -> None:
        with self._lock:
            databases, self._databases = list(self._databases.values()), {}
            self._controllers = {}
        for db in databases:
            db.dispose()


# Methods whose first two arguments are not (project, queue).
_UNROUTED = frozenset({"volume", "delete_connection", "expired_queues"})


class _Routed:
    """A controller stand-in: each call runs on the queue's database."""

    def __init__(self, router: Router, cls: type) -> None:
        self._router = router
        self._cls = cls
        self._main = router.controller(cls, router.main)

    def __getattr__(self, name: str) -> Any:
        router = self._router
        if not router.enabled:
            return getattr(self._main, name)
        if name == "create" and self._cls.__name__ == "QueueController":
            return self._create_queue
        if name == "delete" and self._cls.__name__ == "QueueController":
            return self._delete_queue
        if name == "list" and self._cls.__name__ == "QueueController":
            return self._list_queues
        if name in _UNROUTED:
            return self._everywhere(name)

        def call(project: str, queue: str, *args: Any, **kwargs: Any) -> Any:
            db = router.db_for(project, queue)
            return getattr(router.controller(self._cls, db), name)(project, queue, *args,
                                                                    **kwargs)

        return call

    def _create_queue(self, project: str, queue: str, metadata: dict[str, Any] | None) -> bool:
        flavor = (metadata or {}).get("_flavor")
        router = self._router
        if isinstance(flavor, str) and flavor and router.catalog.lookup(project, queue) is None:
            if self._main.get_metadata(project, queue) is not None:
                return False  # already exists unpooled: PUT never moves a queue
            router.catalog.place(project, queue, flavor)
        db = router.db_for(project, queue)
        return router.controller(self._cls, db).create(project, queue, metadata)

    def _delete_queue(self, project: str, queue: str) -> None:
        router = self._router
        router.controller(self._cls, router.db_for(project, queue)).delete(project, queue)
        router.catalog.unplace(project, queue)

    def _list_queues(self, project: str, marker: str | None, limit: int, *args: Any,
                     **kwargs: Any) -> dict[str, Any]:
        # Every database lists its own first page; the merged page is the
        # ``limit`` smallest names (each database's page is sorted by name).
        merged: list[dict[str, Any]] = []
        count: int | None = None
        for db in self._router.databases():
            part = self._router.controller(self._cls, db).list(project, marker, limit,
                                                               *args, **kwargs)
            merged.extend(part["queues"])
            if part.get("count") is not None:
                count = (count or 0) + part["count"]
        merged.sort(key=lambda item: item["name"])
        return {"queues": merged[:limit], "count": count}

    def _everywhere(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            results = []
            for db in self._router.databases():
                controller = self._router.controller(self._cls, db)
                results.append(getattr(controller, name)(*args, **kwargs))
            if name == "volume":
                return {key: sum(r[key] for r in results) for key in ("free", "claimed",
                                                                       "total")}
            if results and isinstance(results[0], int):
                return sum(results)
            return results[0] if results else None

        return call

"""The pool catalog: pools, flavors, and which pool holds each queue.

A **pool** is an additional database (its ``uri`` is a SQLAlchemy URL,
migrated to Herald's schema when registered); a **flavor** names a group of
pools. A queue created with ``_flavor`` metadata is placed on one of the
flavor's pools (weighted random choice) and from then on every operation on
it runs against that pool's database. The placement is the **catalog**: a
table in the main database mapping ``(project, queue)`` to a pool; queues
without an entry live in the main database. The tables of this module live
only in the main database (migrations 0004 and 0006).

Tenancy (the decision; docs/security.md keeps the same table):

* **Pools are global, operator-owned.** The admin role (of any project: it
  is the operator's role) lists, reads, registers and tunes every pool
  (``uri``, ``weight``, ``options``). Nothing else about a pool is
  anybody's but the operator's: its name and URI are visible to every admin.
* **Flavors are per project**, keyed by ``(project, name)``: listing, get,
  put, patch, delete and placement all look a flavor up in the caller's
  project. Another project's flavor does not exist for the caller whatever
  its roles (404 on get/patch, a new flavor of its own on put, a no-op on
  delete, 400 "does not exist" on placement). Reads need no role; changes
  need the admin role (the edge's policy).
* **Which pools a flavor has** is the flavor's, so it is per project too:
  ``flavor_pools`` holds ``(project, pool) -> flavor`` (a pool serves at
  most one flavor of each project, as a pool has one ``flavor`` in the
  API). Flavors of several projects may share a pool; each project's queues
  keep their own rows in it (every table is keyed by project). What a pool
  shows as its ``flavor`` is the reader's project's flavor, ``None`` if only
  other projects' flavors use it; setting a pool's ``flavor`` (pool PUT or
  PATCH) changes only the caller's project's flavor. A pool another
  project's flavor uses cannot be deleted (Conflict): that would change
  their flavor.
* **Placement** (``place``) uses the caller's project's flavor and only its
  pools; the catalog is keyed by ``(project, queue)``. Topics are queues of
  a namespace project (``herald.api.handlers.topics``: the project, the unit
  separator, a suffix); they use the flavors of the project before the
  separator (``tenant_of``).

``PoolCatalog``: the admin CRUD of pools and flavors (StorageAPI 1.4) and
placement (``place``, ``lookup[_many]``, ``unplace``); which database an
operation runs on is ``pools.Router``'s job. Thread-safe: no state but its
``Database``, a transaction per method; a changed pool is told by ``forget``.

Not here: the admin API's HTTP shapes (``herald.api.handlers.pools``) and
policy (the edge checks the admin role): this module must never decide by
roles, only by the project it is given. Background jobs (expiry GC, outbox
dispatch) of pool databases are the worker's.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from herald.common import errors
from herald.storage import clock, migrations
from herald.storage.engine import Database

LOG = logging.getLogger(__name__)

_meta = sa.MetaData()

pools = sa.Table(
    "pools",
    _meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("uri", sa.String(255), nullable=False, unique=True),
    sa.Column("weight", sa.BigInteger, nullable=False),
    sa.Column("options", sa.Text, nullable=False, default="{}"),
    sa.Column("created", sa.Float(precision=53), nullable=False),
)

flavors = sa.Table(
    "flavors",
    _meta,
    sa.Column("project", sa.String(300), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("capabilities", sa.Text, nullable=False, default="{}"),
    sa.Column("created", sa.Float(precision=53), nullable=False),
)

flavor_pools = sa.Table(
    "flavor_pools",
    _meta,
    # One row per pool a project's flavor uses. The key makes a pool serve at
    # most one flavor per project (the API shows one ``flavor`` per pool).
    # A row may name a flavor not created yet (a pool PUT with ``flavor``
    # before the flavor's PUT, as Zaqar allows); placement needs the flavor.
    sa.Column("project", sa.String(300), primary_key=True),
    sa.Column("pool", sa.String(64), primary_key=True),
    sa.Column("flavor", sa.String(255), nullable=False),
    sa.Index("ix_flavor_pools_flavor", "project", "flavor"),
    sa.Index("ix_flavor_pools_pool", "pool"),
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

#: herald.api.handlers.topics stores a project's topics under the project id,
#: this separator and a suffix. No Keystone project id contains it.
NAMESPACE_SEPARATOR = "\x1f"


def tenant_of(project: str) -> str:
    """The project whose flavors ``project`` uses: itself, or for a topic
    namespace the project it belongs to."""
    return project.split(NAMESPACE_SEPARATOR, 1)[0]


def _pool_row(row: Any, detailed: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"name": row.name, "uri": row.uri, "weight": row.weight,
                            "flavor": row.flavor}
    if detailed:
        item["options"] = json.loads(row.options or "{}")
    return item


def _pools_seen_by(project: str) -> sa.Select[Any]:
    """Pools with ``flavor``: the flavor of ``project`` using each, else None."""
    mine = flavor_pools.alias("mine")
    return (sa.select(pools, mine.c.flavor)
            .select_from(pools.outerjoin(mine, sa.and_(mine.c.pool == pools.c.name,
                                                       mine.c.project == project))))


class PoolCatalog:
    """The admin operations on pools and flavors (main database).

    Every method takes the caller's project: flavors and pool memberships are
    looked up in it, never by name alone."""

    def __init__(self, db: Database, databases: Callable[[str], Database],
                 forget: Callable[[str], None]) -> None:
        self._db = db
        self._databases = databases
        self._forget = forget

    # -- pools ------------------------------------------------------------

    def pool_list(self, project: str, marker: str | None, limit: int,
                  detailed: bool) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            stmt = _pools_seen_by(project).order_by(pools.c.name).limit(limit)
            if marker:
                stmt = stmt.where(pools.c.name > marker)
            return [_pool_row(row, detailed) for row in conn.execute(stmt)]

    def pool_get(self, project: str, name: str, detailed: bool) -> dict[str, Any]:
        with self._db.read() as conn:
            row = conn.execute(_pools_seen_by(project).where(pools.c.name == name)).first()
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

    @staticmethod
    def _set_flavor(conn: sa.Connection, project: str, pool: str,
                    flavor: str | None) -> None:
        """Put ``pool`` in ``project``'s ``flavor`` (None: in none of its
        flavors). Other projects' flavors keep it."""
        conn.execute(sa.delete(flavor_pools).where(flavor_pools.c.project == project,
                                                   flavor_pools.c.pool == pool))
        if flavor:
            conn.execute(sa.insert(flavor_pools).values(project=project, pool=pool,
                                                        flavor=flavor))

    def pool_put(self, project: str, name: str, uri: str, weight: int, flavor: str | None,
                 options: dict[str, Any]) -> None:
        """Create or overwrite a pool; ``flavor`` is the caller's project's."""
        with self._db.read() as conn:
            other = conn.execute(sa.select(pools.c.name).where(
                pools.c.uri == uri, pools.c.name != name)).first()
        if other is not None:
            raise errors.Conflict(f"The URI {uri} is used by pool {other.name}.")
        self._check_reachable(uri)
        values = {"uri": uri, "weight": weight, "options": json.dumps(options or {})}
        with self._db.write() as conn:
            updated = conn.execute(sa.update(pools).where(pools.c.name == name)
                                   .values(**values)).rowcount
            if not updated:
                conn.execute(sa.insert(pools).values(name=name, created=clock.now(), **values))
            self._set_flavor(conn, project, name, flavor)
        self._forget(name)

    def pool_update(self, project: str, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        current = self.pool_get(project, name, detailed=True)
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
        if "options" in changes:
            values["options"] = json.dumps(changes["options"] or {})
        with self._db.write() as conn:
            if values:
                conn.execute(sa.update(pools).where(pools.c.name == name).values(**values))
            if "flavor" in changes:
                self._set_flavor(conn, project, name, changes["flavor"] or None)
        self._forget(name)
        return self.pool_get(project, name, detailed=True)

    def pool_delete(self, project: str, name: str) -> None:
        with self._db.write() as conn:
            row = conn.execute(sa.select(pools).where(pools.c.name == name)).first()
            if row is None:
                return
            others = conn.execute(sa.select(sa.func.count()).select_from(flavor_pools).where(
                flavor_pools.c.pool == name, flavor_pools.c.project != project)).scalar_one()
            if others:
                # Deleting it would change another project's flavor; which
                # project or flavor is theirs to know.
                raise errors.Conflict(f"Pool {name} is used by a flavor of another project.")
            own = conn.execute(sa.select(flavor_pools.c.flavor).where(
                flavor_pools.c.pool == name, flavor_pools.c.project == project)).first()
            if own is not None:
                siblings = conn.execute(sa.select(sa.func.count()).select_from(flavor_pools)
                                        .where(flavor_pools.c.project == project,
                                               flavor_pools.c.flavor == own.flavor)
                                        ).scalar_one()
                flavor_exists = conn.execute(sa.select(flavors.c.name).where(
                    flavors.c.project == project, flavors.c.name == own.flavor)
                ).first() is not None
                if siblings <= 1 and flavor_exists:
                    raise errors.Forbidden(f"Pool {name} is the last pool of flavor "
                                           f"{own.flavor}; delete the flavor first.")
            holds = conn.execute(sa.select(sa.func.count()).select_from(catalog).where(
                catalog.c.pool == name)).scalar_one()
            if holds:
                # Forgetting the placement would silently hide the queues'
                # messages (they stay in the pool's database).
                raise errors.Conflict(f"Pool {name} still holds {holds} queue(s); delete "
                                      "them first.")
            conn.execute(sa.delete(flavor_pools).where(flavor_pools.c.pool == name))
            conn.execute(sa.delete(pools).where(pools.c.name == name))
        self._forget(name)

    # -- flavors ----------------------------------------------------------

    @staticmethod
    def _pool_names(conn: sa.Connection, project: str, flavor: str) -> list[str]:
        return [row.pool for row in conn.execute(
            sa.select(flavor_pools.c.pool)
            .select_from(flavor_pools.join(pools, pools.c.name == flavor_pools.c.pool))
            .where(flavor_pools.c.project == project, flavor_pools.c.flavor == flavor)
            .order_by(flavor_pools.c.pool))]

    def _flavor_doc(self, conn: sa.Connection, row: Any, detailed: bool = True
                    ) -> dict[str, Any]:
        item: dict[str, Any] = {"name": row.name}
        if detailed:
            item["pool_list"] = self._pool_names(conn, row.project, row.name)
            item["capabilities"] = list(CAPABILITIES)
        return item

    @staticmethod
    def _flavor_row(conn: sa.Connection, project: str, name: str) -> Any:
        return conn.execute(sa.select(flavors).where(flavors.c.project == project,
                                                     flavors.c.name == name)).first()

    def flavor_list(self, project: str, marker: str | None, limit: int,
                    detailed: bool) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            stmt = (sa.select(flavors).where(flavors.c.project == project)
                    .order_by(flavors.c.name).limit(limit))
            if marker:
                stmt = stmt.where(flavors.c.name > marker)
            return [self._flavor_doc(conn, row, detailed) for row in conn.execute(stmt)]

    def flavor_get(self, project: str, name: str) -> dict[str, Any]:
        with self._db.read() as conn:
            row = self._flavor_row(conn, project, name)
            if row is None:
                raise errors.NotFound(f"Flavor {name} does not exist")
            return self._flavor_doc(conn, row)

    @staticmethod
    def _assign(conn: sa.Connection, project: str, name: str, pool_list: list[str]) -> None:
        """Make ``pool_list`` the pools of ``project``'s flavor ``name``: a
        listed pool leaves the project's other flavor, if any; pools are
        global, so any registered pool may be listed."""
        known = {row.name for row in conn.execute(
            sa.select(pools.c.name).where(pools.c.name.in_(pool_list)))}
        unknown = sorted(set(pool_list) - known)
        if unknown:
            raise errors.BadRequest(f"Pools {unknown} do not exist.")
        conn.execute(sa.delete(flavor_pools).where(
            flavor_pools.c.project == project,
            sa.or_(flavor_pools.c.pool.in_(pool_list),
                   flavor_pools.c.flavor == name)))
        if pool_list:
            conn.execute(sa.insert(flavor_pools), [
                {"project": project, "pool": pool, "flavor": name}
                for pool in sorted(set(pool_list))])

    def flavor_put(self, project: str, name: str, pool_list: list[str],
                   capabilities: dict[str, Any]) -> None:
        with self._db.write() as conn:
            self._assign(conn, project, name, pool_list)
            conn.execute(sa.delete(flavors).where(flavors.c.project == project,
                                                  flavors.c.name == name))
            conn.execute(sa.insert(flavors).values(
                project=project, name=name, capabilities=json.dumps(capabilities or {}),
                created=clock.now()))

    def flavor_update(self, project: str, name: str, pool_list: list[str]) -> dict[str, Any]:
        with self._db.write() as conn:
            if self._flavor_row(conn, project, name) is None:
                raise errors.NotFound(f"Flavor {name} does not exist")
            self._assign(conn, project, name, pool_list)
        return self.flavor_get(project, name)

    def flavor_delete(self, project: str, name: str) -> None:
        with self._db.write() as conn:
            conn.execute(sa.delete(flavor_pools).where(flavor_pools.c.project == project,
                                                       flavor_pools.c.flavor == name))
            conn.execute(sa.delete(flavors).where(flavors.c.project == project,
                                                  flavors.c.name == name))

    # -- placement ----------------------------------------------------------

    def place(self, project: str, queue: str, flavor: str) -> str:
        """Put a new queue on one of the pools of ``flavor`` (a flavor of the
        queue's project); its pool name."""
        tenant = tenant_of(project)
        with self._db.write() as conn:
            existing = conn.execute(sa.select(catalog.c.pool).where(
                catalog.c.project == project, catalog.c.queue == queue)).first()
            if existing is not None:
                return existing.pool
            if self._flavor_row(conn, tenant, flavor) is None:
                # Also when another project has a flavor of that name: for
                # this project it does not exist.
                raise errors.BadRequest(f"Flavor {flavor} does not exist.")
            candidates = conn.execute(
                sa.select(pools.c.name, pools.c.weight)
                .select_from(pools.join(flavor_pools, flavor_pools.c.pool == pools.c.name))
                .where(flavor_pools.c.project == tenant, flavor_pools.c.flavor == flavor,
                       pools.c.weight > 0)
                .order_by(pools.c.name)).all()
            if not candidates:
                raise errors.BadRequest(f"Flavor {flavor} has no pool that takes queues.")
            chosen = random.choices([c.name for c in candidates],
                                    weights=[c.weight for c in candidates])[0]
            conn.execute(sa.insert(catalog).values(project=project, queue=queue, pool=chosen))
            return chosen

    def lookup(self, project: str, queue: str) -> str | None:
        return self.lookup_many(project, [queue]).get(queue)

    def lookup_many(self, project: str, queues: list[str]) -> dict[str, str]:
        """The pool of each placed queue of ``queues`` (unplaced ones absent)."""
        with self._db.read() as conn:
            return {row.queue: row.pool for row in conn.execute(sa.select(
                catalog.c.queue, catalog.c.pool).where(catalog.c.project == project,
                                                       catalog.c.queue.in_(queues)))}

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

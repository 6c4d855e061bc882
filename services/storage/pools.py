"""Pool routing: which database each storage operation runs on.

With ``[DEFAULT] pooling`` on, a queue lives in the database of the pool it
was placed on (``herald.storage.pool_catalog``, which also states the
tenancy of pools and flavors: pools global, flavors per project). ``Router``
runs an operation where its ``Route`` (``herald.common.rpc.operations``)
says: ``QUEUE`` on the queue's database (the main one if unplaced), ``MAIN``
on the main database, ``EVERY`` on every database with the results merged,
and the three queue-lifecycle routes (create places the queue first, delete
forgets its placement, list merges every database's page). With pooling off
every operation runs on the main database and the catalog is never read.

It also keeps one ``Database`` (engine) per pool and one controller per
(database, controller class) for the worker's life; ``forget`` drops a
pool's when its URI changes, ``dispose`` all of them at shutdown. The
controllers that move messages between queues (redrive, and claims, which
dead-letter) get a ``CatalogPlacement`` of their database: which queues
live elsewhere, read from the catalog whenever asked (never cached: a
placement made a moment ago must count), and nothing read with pooling off.

Thread-safety: the RPC executor's threads share one ``Router``; its caches
are guarded by one lock, held only for dictionary work (never while an
engine connects or a controller runs). The routes are a table built once
per router (``_routes``): nothing is looked up by name per call.

Must not decide by roles (the edge's policy) or know the operations' names:
it routes by ``Route`` only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Any

from oslo_config import cfg

from herald.common import errors
from herald.common.rpc.operations import Route
from herald.storage.claims import ClaimController
from herald.storage.engine import Database, make_engine, pool_size_from_conf
from herald.storage.pool_catalog import PoolCatalog
from herald.storage.redrive import RedriveController
from herald.storage.subscriptions import SubscriptionController

#: A controller method, unbound: ``(controller, [project,] **kwargs)``.
Target = Callable[..., Any]


def merge_results(results: list[Any]) -> Any:
    """One answer from every database's (``Route.EVERY``): counts add up,
    dictionaries of counts add up key by key, anything else is the first."""
    if not results:
        return None
    first = results[0]
    if isinstance(first, dict):
        return {key: sum(r[key] for r in results) for key in first}
    if isinstance(first, int) and not isinstance(first, bool):
        return sum(results)
    return first


#: The controllers that are told where queues live (``CatalogPlacement``).
_PLACED = (ClaimController, RedriveController)


class CatalogPlacement:
    """Where queues live, seen from one of a router's databases
    (``herald.storage.redrive.Placement``, ``herald.storage.dead_letters.
    Placement``). Without pooling, everything lives here."""

    def __init__(self, router: Router, db: Database) -> None:
        self._router = router
        self._db = db

    def here(self) -> str | None:
        return self._router.pool_of(self._db) if self._router.enabled else None

    def elsewhere(self, project: str, queues: Collection[str]) -> dict[str, str | None]:
        if not queues or not self._router.enabled:
            return {}
        here = self._router.pool_of(self._db)
        placed = self._router.catalog.lookup_many(project, sorted(queues))
        return {queue: placed.get(queue) for queue in sorted(queues)
                if placed.get(queue) != here}

    def database_of(self, project: str, queue: str) -> Database | None:
        if not self._router.enabled:
            return None
        pool = self._router.catalog.lookup(project, queue)
        if pool == self._router.pool_of(self._db):
            return None
        return self._router.main if pool is None else self._router.database(pool)


class Router:
    """Databases per pool, controllers per database, and routing by ``Route``."""

    def __init__(self, db: Database, conf: cfg.ConfigOpts) -> None:
        self.main = db
        self._conf = conf
        self._lock = threading.Lock()
        self._databases: dict[str, Database] = {}
        self._controllers: dict[tuple[int, type], Any] = {}
        # The main database's controllers, read without the lock: built once,
        # never dropped (only pools' engines are forgotten).
        self._main_controllers: dict[type, Any] = {}
        self.catalog = PoolCatalog(db, self.database, self._forget)
        self._seed()
        self._routes: dict[Route, Callable[[type, Target, str, dict[str, Any]], Any]] = {
            Route.QUEUE: self._on_queue,
            Route.MAIN: self._on_main,
            Route.EVERY: self._on_every,
            Route.QUEUE_CREATE: self._create_queue,
            Route.QUEUE_DELETE: self._delete_queue,
            Route.QUEUE_LIST: self._list_queues,
        }

    @property
    def enabled(self) -> bool:
        return bool(self._conf.pooling)

    # -- routing ------------------------------------------------------------

    def run(self, route: Route, cls: type, target: Target, project: str,
            kwargs: dict[str, Any]) -> Any:
        """Run ``target`` (a method of ``cls``) where ``route`` says, with the
        project first (except ``Route.EVERY``) and ``kwargs`` by keyword."""
        if not self.enabled:
            controller = self._main_controllers.get(cls) or self.controller(cls, self.main)
            if route is Route.EVERY:
                return target(controller, **kwargs)
            return target(controller, project, **kwargs)
        return self._routes[route](cls, target, project, kwargs)

    def _on_queue(self, cls: type, target: Target, project: str,
                  kwargs: dict[str, Any]) -> Any:
        db = self.db_for(project, kwargs["queue"])
        return target(self.controller(cls, db), project, **kwargs)

    def _on_main(self, cls: type, target: Target, project: str,
                 kwargs: dict[str, Any]) -> Any:
        return target(self.controller(cls, self.main), project, **kwargs)

    def _on_every(self, cls: type, target: Target, project: str,
                  kwargs: dict[str, Any]) -> Any:
        return merge_results([target(self.controller(cls, db), **kwargs)
                              for db in self.databases()])

    def _create_queue(self, cls: type, target: Target, project: str,
                      kwargs: dict[str, Any]) -> Any:
        queue = kwargs["queue"]
        flavor = (kwargs.get("metadata") or {}).get("_flavor")
        if isinstance(flavor, str) and flavor and self.catalog.lookup(project, queue) is None:
            if self.controller(cls, self.main).get_metadata(project, queue) is not None:
                return False  # already exists unpooled: PUT never moves a queue
            self.catalog.place(project, queue, flavor)
        return self._on_queue(cls, target, project, kwargs)

    def _delete_queue(self, cls: type, target: Target, project: str,
                      kwargs: dict[str, Any]) -> Any:
        queue = kwargs["queue"]
        db = self.db_for(project, queue)
        self._on_queue(cls, target, project, kwargs)
        # Subscriptions outlive their queue (as without pooling) and stay in
        # the queue's pool: its placement stays while any of them is left, or
        # no lookup would find them again.
        if db is self.main or not self.controller(SubscriptionController, db).list(
                project, queue, None, 1)["subscriptions"]:
            self.catalog.unplace(project, queue)

    def _list_queues(self, cls: type, target: Target, project: str,
                     kwargs: dict[str, Any]) -> dict[str, Any]:
        # Every database lists its own first page; the merged page is the
        # ``limit`` smallest names (each database's page is sorted by name).
        merged: list[dict[str, Any]] = []
        count: int | None = None
        for db in self.databases():
            part = target(self.controller(cls, db), project, **kwargs)
            merged.extend(part["queues"])
            if part.get("count") is not None:
                count = (count or 0) + part["count"]
        merged.sort(key=lambda item: item["name"])
        return {"queues": merged[:kwargs["limit"]], "count": count}

    # -- databases and controllers --------------------------------------------

    def database(self, pool: str) -> Database:
        with self._lock:
            db = self._databases.get(pool)
        if db is not None:
            return db
        uri = self.catalog.pool_uri(pool)
        with self._lock:
            db = self._databases.get(pool)
            if db is None:
                db = Database(make_engine(uri, pool_size=pool_size_from_conf(self._conf)),
                              wiring=self.main.wiring)
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

    def pool_of(self, db: Database) -> str | None:
        """The pool whose database ``db`` is; None for the main database."""
        if db is self.main:
            return None
        with self._lock:
            for name, known in self._databases.items():
                if known is db:
                    return name
        # Forgotten meanwhile (its pool changed): the caller tries again later.
        raise errors.ServiceUnavailable("The pool of this queue was changed.")

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
                # A redrive and a dead-lettering claim move messages between
                # queues: they must know which of them live in another database.
                found = (cls(db, self._conf, CatalogPlacement(self, db))
                         if cls in _PLACED else cls(db, self._conf))
                self._controllers[key] = found
                if db is self.main:
                    self._main_controllers[cls] = found
            return found

    def _seed(self) -> None:
        # The catalog is the main database's "controller" of Route.MAIN's
        # pool_* and flavor_* operations.
        self._controllers = {(id(self.main), PoolCatalog): self.catalog}
        self._main_controllers = {PoolCatalog: self.catalog}

    def dispose(self) -> None:
        with self._lock:
            databases, self._databases = list(self._databases.values()), {}
            self._seed()
        for db in databases:
            db.dispose()

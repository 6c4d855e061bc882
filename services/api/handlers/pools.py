"""Pools and flavors, the operator API (rest-v2.md §7-8 shapes).

Routed only when ``[DEFAULT] admin_mode`` and ``[DEFAULT] pooling`` are both
on (404 otherwise, as an unknown path). Policy (§0.2 step 8): every pool
call and flavor writes need the ``admin`` role; flavor reads do not. In
Herald a pool's ``uri`` is a SQLAlchemy database URL: registering it makes
the workers migrate that database and place flavored queues on it
(``herald.storage.pools``). Handlers validate bodies and shape replies; the
catalog itself is the workers'.

Tenancy (decided in ``herald.storage.pools``): pools are global, so any
admin sees and tunes every pool; flavors, and which pools a flavor has, are
the caller's project's. Every call therefore passes the caller's context
(project from the token in keystone mode): a flavor of another project is a
404 here, a pool's ``flavor`` is the caller's project's flavor using it, and
a pool another project's flavor uses cannot be deleted (409). These
handlers must never look a flavor up without the caller's project.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

from herald.api.handlers.base import BaseHandler
from herald.api.query_string import render_query
from herald.common import errors
from herald.common.edge.bodies import require_object

DEFAULT_PAGE = 10
MAX_WEIGHT = 2**32 - 1
POOL_KEYS = frozenset({"uri", "weight", "flavor", "options"})
FLAVOR_KEYS = frozenset({"pool_list", "capabilities"})
_NAME_LIMIT = 64


def pool_href(name: str) -> str:
    return f"/v2/pools/{name}"


def flavor_href(name: str) -> str:
    return f"/v2/flavors/{name}"


def _check_uri(uri: Any) -> str:
    if not isinstance(uri, str) or not uri or len(uri) > 255:
        raise errors.BadRequest("uri must be a database URL of at most 255 characters.")
    try:
        make_url(uri)
    except Exception as exc:
        raise errors.BadRequest(f"uri {uri!r} is not a database URL.") from exc
    return uri


def _check_weight(weight: Any) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise errors.BadRequest(f"weight must be an integer from 0 to {MAX_WEIGHT}.")
    return weight


def _check_flavor(flavor: Any) -> str | None:
    if flavor is None:
        return None
    if not isinstance(flavor, str) or len(flavor) > 255:
        raise errors.BadRequest("flavor must be a string of at most 255 characters.")
    return flavor


def _check_options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise errors.BadRequest("Options must be a dict.")
    return options


def _check_pool_list(document: dict[str, Any]) -> list[str]:
    pool_list = document.get("pool_list")
    if (not isinstance(pool_list, list) or not pool_list
            or not all(isinstance(name, str) and name for name in pool_list)):
        raise errors.BadRequest("pool_list must be a non-empty list of pool names.")
    return pool_list


class PoolingHandler(BaseHandler):
    """404 unless admin_mode and pooling; admin role for ``ADMIN_METHODS``."""

    ADMIN_METHODS: tuple[str, ...] = ("GET", "PUT", "PATCH", "DELETE")

    def served(self) -> bool:
        return bool(self.conf.admin_mode and self.conf.pooling)

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:  # OPTIONS was answered
            return
        if self.request.method in self.ADMIN_METHODS and not self.ctx.is_admin:
            raise errors.Forbidden("You are not authorized to complete this action.")

    def _limit(self, maximum: int) -> int:
        limit = self.query.get_int("limit")
        if limit is not None and not 0 < limit <= maximum:
            raise errors.BadRequest(f"Limit must be at least 1 and no greater than {maximum}.")
        return DEFAULT_PAGE if limit is None else limit

    def _next_link(self, items: list[dict[str, Any]], limit: int) -> list[dict[str, str]]:
        if not items:
            return []
        params: list[tuple[str, object]] = [("limit", limit)]
        detailed = self.query.get_bool("detailed")
        if detailed is not None:
            params.append(("detailed", detailed))
        params.append(("marker", items[-1]["name"]))
        return [{"rel": "next", "href": f"{self.request.path}?{render_query(params)}"}]

    def _check_name(self, name: str) -> None:
        if len(name) > _NAME_LIMIT:
            raise errors.BadRequest(f"Names may not be more than {_NAME_LIMIT} characters long.")


class PoolCollectionHandler(PoolingHandler):
    ALLOWED = ("GET",)

    async def get(self) -> None:
        limit = self._limit(self.conf.limits.max_pools_per_page)
        detailed = bool(self.query.get_bool("detailed"))
        found = await self.storage.pool_list(self.ctx, self.query.get_str("marker"), limit,
                                             detailed)
        items = [{**pool, "href": pool_href(pool["name"])} for pool in found]
        self.set_header("Content-Location", self.request.uri or self.request.path)
        self.reply_json({"pools": items, "links": self._next_link(items, limit)})


class PoolHandler(PoolingHandler):
    ALLOWED = ("GET", "PUT", "PATCH", "DELETE")

    async def get(self, pool_name: str) -> None:
        found = await self.storage.pool_get(self.ctx, pool_name,
                                            bool(self.query.get_bool("detailed")))
        self.reply_json({**found, "href": pool_href(pool_name)})

    async def put(self, pool_name: str) -> None:
        self._check_name(pool_name)
        document = require_object(self.json_body())
        unknown = set(document) - POOL_KEYS
        if unknown:
            raise errors.BadRequest(f"Unknown keys: {sorted(unknown)}")
        if "uri" not in document or "weight" not in document:
            raise errors.BadRequest("uri and weight are required.")
        await self.storage.pool_put(self.ctx, pool_name, _check_uri(document["uri"]),
                                    _check_weight(document["weight"]),
                                    _check_flavor(document.get("flavor")),
                                    _check_options(document.get("options")))
        self.set_header("Location", pool_href(pool_name))
        self.reply_empty(201)

    async def patch(self, pool_name: str) -> None:
        document = require_object(self.json_body())
        changes: dict[str, Any] = {}
        if "uri" in document:
            changes["uri"] = _check_uri(document["uri"])
        if "weight" in document:
            changes["weight"] = _check_weight(document["weight"])
        if "flavor" in document:
            changes["flavor"] = _check_flavor(document["flavor"]) or None  # "" detaches
        if "options" in document:
            changes["options"] = _check_options(document["options"])
        if not changes:
            raise errors.BadRequest("One of uri, weight, flavor or options is needed.")
        updated = await self.storage.pool_update(self.ctx, pool_name, changes)
        self.reply_json({**updated, "href": pool_href(pool_name)})

    async def delete(self, pool_name: str) -> None:
        await self.storage.pool_delete(self.ctx, pool_name)
        self.reply_empty(204)


class FlavorCollectionHandler(PoolingHandler):
    ALLOWED = ("GET",)
    ADMIN_METHODS = ()

    async def get(self) -> None:
        limit = self._limit(self.conf.limits.max_flavors_per_page)
        detailed = bool(self.query.get_bool("detailed"))
        found = await self.storage.flavor_list(self.ctx, self.query.get_str("marker"), limit,
                                               detailed)
        items = [{**flavor, "href": flavor_href(flavor["name"])} for flavor in found]
        self.reply_json({"flavors": items, "links": self._next_link(items, limit)})


class FlavorHandler(PoolingHandler):
    ALLOWED = ("GET", "PUT", "PATCH", "DELETE")
    ADMIN_METHODS = ("PUT", "PATCH", "DELETE")

    async def get(self, flavor_name: str) -> None:
        found = await self.storage.flavor_get(self.ctx, flavor_name)
        self.reply_json({**found, "href": flavor_href(flavor_name)})

    async def put(self, flavor_name: str) -> None:
        self._check_name(flavor_name)
        document = require_object(self.json_body())
        unknown = set(document) - FLAVOR_KEYS
        if unknown:
            raise errors.BadRequest(f"Unknown keys: {sorted(unknown)}")
        capabilities = document.get("capabilities") or {}
        if not isinstance(capabilities, dict):
            raise errors.BadRequest("capabilities must be an object.")
        await self.storage.flavor_put(self.ctx, flavor_name, _check_pool_list(document),
                                      capabilities)
        self.set_header("Location", flavor_href(flavor_name))
        self.reply_empty(201)

    async def patch(self, flavor_name: str) -> None:
        document = require_object(self.json_body())
        updated = await self.storage.flavor_update(self.ctx, flavor_name,
                                                   _check_pool_list(document))
        self.reply_json({**updated, "href": flavor_href(flavor_name)})

    async def delete(self, flavor_name: str) -> None:
        await self.storage.flavor_delete(self.ctx, flavor_name)
        self.reply_empty(204)


def routes(segment: str) -> list[tuple[str, type[BaseHandler]]]:
    return [
        (r"/v2/pools", PoolCollectionHandler),
        (rf"/v2/pools/(?P<pool_name>{segment})", PoolHandler),
        (r"/v2/flavors", FlavorCollectionHandler),
        (rf"/v2/flavors/(?P<flavor_name>{segment})", FlavorHandler),
    ]

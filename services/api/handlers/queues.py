"""Queue resources (rest-v2.md §3): list, create, metadata get/patch, delete,
stats and purge -- and, through ``ResourceKind``, the same for topics.

A topic (rest-v2.md §10) is a queue in a namespace of its own
(``herald.api.handlers.topics``); its handlers are these, run with
``TOPIC`` instead of ``QUEUE``: the kind says the noun of the messages, the
listing key and hrefs, which reserved keys are shown with defaults, whether
``with_count`` is offered, and how the project maps to the storage
namespace. Only the stats differ in shape (``QueueStatsHandler`` here,
``TopicStatsHandler`` there).

Handlers validate in the spec's order (``herald.common.edge.queues``), call
storage, and show the reserved metadata defaults. The name check already
ran in the pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from herald.api import errors as api_errors
from herald.api import queue_listing, wire
from herald.api.handlers.base import BaseHandler
from herald.common import errors
from herald.common.context import RequestContext
from herald.common.edge import queues as rules
from herald.common.edge.bodies import require_object


@dataclasses.dataclass(frozen=True)
class ResourceKind:
    """What differs between the queue and the topic resources (built once, at import)."""

    noun: str  #: "Queue" or "Topic", as the messages say it
    collection: str  #: the listing's key and the path segment: "queues" / "topics"
    shown_keys: tuple[str, ...]  #: reserved keys shown with their defaults
    offers_count: bool  #: whether listings accept ``with_count``
    #: The storage project of a caller's project; None: the project itself.
    namespace: Callable[[str], str] | None = None

    def href(self, name: str) -> str:
        return f"/v2/{self.collection}/{name}"

    def context(self, ctx: RequestContext) -> RequestContext:
        if self.namespace is None:
            return ctx  # queues: no copy per request
        return dataclasses.replace(ctx, project_id=self.namespace(ctx.project_id))

    def shown(self, metadata: dict[str, Any] | None, limits: Any) -> dict[str, Any]:
        return rules.with_defaults(metadata, limits, self.shown_keys)

    def not_found(self, name: str, project: str) -> errors.NotFound:
        if self.namespace is None:
            return errors.QueueDoesNotExist.of(name, project)
        return errors.NotFound(f"{self.noun} {name} does not exist for project {project}")


QUEUE = ResourceKind("Queue", "queues", rules.SHOWN_RESERVED_KEYS, offers_count=True)


class QueueKindHandler(BaseHandler):
    """A handler of a queue-like resource; subclasses for topics set ``KIND``."""

    KIND: ClassVar[ResourceKind] = QUEUE

    @property
    def kind_ctx(self) -> RequestContext:
        """The context storage sees: the caller's, in the kind's namespace."""
        return self.KIND.context(self.ctx)


class QueueCollectionHandler(QueueKindHandler):
    ALLOWED = ("GET",)

    async def get(self) -> None:
        kind, limits = self.KIND, self.conf.limits
        listing = queue_listing.parse(self.query, limits, offers_count=kind.offers_count)
        result = await self.unavailable_as(
            f"{kind.noun}s could not be listed.",
            self.storage.queue_list(self.kind_ctx, marker=listing.marker,
                                    limit=listing.page_size, detailed=bool(listing.detailed),
                                    name=listing.name, metadata_filters=listing.filters,
                                    with_count=bool(listing.with_count)))
        items, links = queue_listing.page(
            listing, result["queues"], self.request.path, kind.href,
            lambda metadata: kind.shown(metadata, limits))
        document: dict[str, Any] = {kind.collection: items, "links": links}
        count = result.get("count")
        if listing.with_count and count:
            document["count"] = count
        self.reply_json(document)


class QueueHandler(QueueKindHandler):
    ALLOWED = ("GET", "HEAD", "PUT", "PATCH", "DELETE")

    async def put(self, queue_name: str) -> None:
        kind = self.KIND
        rules.metadata_size(self.body_length(), self.conf.limits, kind.noun)
        metadata: dict[str, Any] = {}
        if self.has_body():
            metadata = require_object(self.json_body())
        rules.validate_reserved(metadata, self.conf.limits, errors.BadRequest)
        created = await self.unavailable_as(
            f"{kind.noun} could not be created.",
            self.storage.queue_create(self.kind_ctx, queue_name, metadata))
        self.set_header("Location", kind.href(queue_name))
        self.reply_empty(201 if created else 204)

    async def get(self, queue_name: str) -> None:
        stored = await self.unavailable_as(
            f"{self.KIND.noun} metadata could not be retrieved.",
            self.storage.queue_get_metadata(self.kind_ctx, queue_name))
        # A missing queue shows the defaults (200): Quirk #2.
        self.reply_json(self.KIND.shown(stored, self.conf.limits))

    async def head(self, queue_name: str) -> None:
        # Not in Zaqar (which has no HEAD route, so its client's
        # Queue.exists() is always True): 204 for a queue of the caller's
        # project, 404 otherwise, which is what that client method expects.
        stored = await self.unavailable_as(
            f"{self.KIND.noun} metadata could not be retrieved.",
            self.storage.queue_get_metadata(self.kind_ctx, queue_name))
        if stored is None:
            raise self.KIND.not_found(queue_name, self.ctx.project_id)
        self.reply_empty(204)

    async def patch(self, queue_name: str) -> None:
        kind, limits = self.KIND, self.conf.limits
        rules.metadata_size(self.body_length(), limits, kind.noun)
        content_type = self.request.headers.get("Content-Type", "")
        if content_type != rules.PATCH_CONTENT_TYPE:
            raise api_errors.APIError(
                415, "415 Unsupported Media Type",
                "Accepted media type for PATCH: {'Accept-Patch': "
                f"'{rules.PATCH_CONTENT_TYPE}'}}.")
        if not self.has_body():
            raise errors.InvalidBody("PATCH body could not be empty for update.")
        changes = rules.validate_patch(self.json_body())
        stored = await self.unavailable_as(
            f"{kind.noun} metadata could not be retrieved.",
            self.storage.queue_get_metadata(self.kind_ctx, queue_name))
        if stored is None:
            raise kind.not_found(queue_name, self.ctx.project_id)
        metadata = rules.apply_patch(stored, changes, kind.shown_keys)
        rules.validate_reserved(metadata, limits, errors.InvalidBody)
        try:
            await self.unavailable_as(
                f"{kind.noun} metadata could not be updated.",
                self.storage.queue_set_metadata(self.kind_ctx, queue_name, metadata))
        except errors.QueueDoesNotExist as exc:  # deleted in between
            raise kind.not_found(queue_name, self.ctx.project_id) from exc
        self.reply_json(kind.shown(metadata, limits))

    async def delete(self, queue_name: str) -> None:
        await self.unavailable_as(f"{self.KIND.noun} could not be deleted.",
                                  self.storage.queue_delete(self.kind_ctx, queue_name))
        self.reply_empty(204)


class QueueStatsHandler(QueueKindHandler):
    ALLOWED = ("GET",)

    async def get(self, queue_name: str) -> None:
        stats = await self.storage.queue_stats(self.ctx, queue_name)
        self.reply_json(wire.stats_object(queue_name, stats))


class QueuePurgeHandler(QueueKindHandler):
    ALLOWED = ("POST",)

    async def post(self, queue_name: str) -> None:
        await self.unavailable_as(f"{self.KIND.noun} could not be purged.",
                                  self.storage.queue_purge(self.kind_ctx, queue_name,
                                                           self._resource_types()))
        self.reply_empty(204)

    def _resource_types(self) -> list[str]:
        """Every type without a body, else the body's ``resource_types``."""
        if not self.has_body():
            return list(rules.PURGE_TYPES)
        document = self.json_body()
        if not isinstance(document, dict) or "resource_types" not in document:
            raise errors.BadRequest('Post body must contain key "resource_types".')
        return rules.purge_types(document["resource_types"])

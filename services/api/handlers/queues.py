"""Queue resources (rest-v2.md §3): list, create, metadata get/patch, delete,
stats and purge.

Handlers validate in the spec's order, call storage, and show the reserved
metadata defaults. The queue-name check already ran in the pipeline.
"""

from __future__ import annotations

from typing import Any

from herald.api import errors as api_errors
from herald.api import queue_listing, wire
from herald.api.handlers.base import BaseHandler
from herald.api.validation import queue_metadata
from herald.api.validation.body import require_object
from herald.common import errors

PURGE_TYPES = ("messages", "subscriptions")


def _check_metadata_size(handler: BaseHandler) -> None:
    maximum = handler.conf.limits.max_queue_metadata
    if handler.body_length() > maximum:
        raise errors.BadRequest(f"Queue metadata is too large. Max size: {maximum}")


class QueueCollectionHandler(BaseHandler):
    ALLOWED = ("GET",)

    async def get(self) -> None:
        limits = self.conf.limits
        listing = queue_listing.parse(self.query, limits.max_queues_per_page,
                                      offers_count=True)
        result = await self.storage_call(
            "Queues could not be listed.",
            self.storage.queue_list(self.ctx, marker=listing.marker, limit=listing.page_size,
                                    detailed=bool(listing.detailed), name=listing.name,
                                    metadata_filters=listing.filters,
                                    with_count=bool(listing.with_count)))
        queues, links = queue_listing.page(
            listing, result["queues"], self.request.path, wire.queue_href,
            lambda metadata: queue_metadata.with_defaults(metadata, limits))
        document: dict[str, Any] = {"queues": queues, "links": links}
        count = result.get("count")
        if listing.with_count and count:
            document["count"] = count
        self.reply_json(document)


class QueueHandler(BaseHandler):
    ALLOWED = ("GET", "PUT", "PATCH", "DELETE")

    async def put(self, queue_name: str) -> None:
        _check_metadata_size(self)
        metadata: dict[str, Any] = {}
        if self.has_body():
            metadata = require_object(self.json_body())
        queue_metadata.validate_reserved(metadata, self.conf.limits, errors.BadRequest)
        created = await self.storage_call(
            "Queue could not be created.",
            self.storage.queue_create(self.ctx, queue_name, metadata))
        self.set_header("Location", wire.queue_href(queue_name))
        self.reply_empty(201 if created else 204)

    async def get(self, queue_name: str) -> None:
        stored = await self.storage_call(
            "Queue metadata could not be retrieved.",
            self.storage.queue_get_metadata(self.ctx, queue_name))
        # A missing queue shows the defaults (200): Quirk #2.
        self.reply_json(queue_metadata.with_defaults(stored, self.conf.limits))

    async def patch(self, queue_name: str) -> None:
        _check_metadata_size(self)
        content_type = self.request.headers.get("Content-Type", "")
        if content_type != queue_metadata.PATCH_CONTENT_TYPE:
            raise api_errors.APIError(
                415, "415 Unsupported Media Type",
                "Accepted media type for PATCH: {'Accept-Patch': "
                f"'{queue_metadata.PATCH_CONTENT_TYPE}'}}.")
        if not self.has_body():
            raise errors.InvalidBody("PATCH body could not be empty for update.")
        changes = queue_metadata.validate_patch(self.json_body())
        stored = await self.storage_call(
            "Queue metadata could not be retrieved.",
            self.storage.queue_get_metadata(self.ctx, queue_name))
        if stored is None:
            raise errors.QueueDoesNotExist.of(queue_name, self.ctx.project_id)
        metadata = queue_metadata.apply_patch(stored, changes)
        queue_metadata.validate_reserved(metadata, self.conf.limits, errors.InvalidBody)
        await self.storage_call(
            "Queue metadata could not be updated.",
            self.storage.queue_set_metadata(self.ctx, queue_name, metadata))
        self.reply_json(queue_metadata.with_defaults(metadata, self.conf.limits))

    async def delete(self, queue_name: str) -> None:
        await self.storage_call("Queue could not be deleted.",
                                self.storage.queue_delete(self.ctx, queue_name))
        self.reply_empty(204)


class QueueStatsHandler(BaseHandler):
    ALLOWED = ("GET",)

    async def get(self, queue_name: str) -> None:
        stats = await self.storage_call("Queue stats could not be read.",
                                        self.storage.queue_stats(self.ctx, queue_name))
        self.reply_json(wire.stats_object(queue_name, stats))


class QueuePurgeHandler(BaseHandler):
    ALLOWED = ("POST",)

    async def post(self, queue_name: str) -> None:
        await self.storage_call("Queue could not be purged.",
                                self.storage.queue_purge(self.ctx, queue_name,
                                                         purge_resource_types(self)))
        self.reply_empty(204)


def purge_resource_types(handler: BaseHandler) -> list[str]:
    """What a purge request (queue or topic) asks to remove: every type
    without a body, else its ``resource_types``, a subset of PURGE_TYPES."""
    if not handler.has_body():
        return list(PURGE_TYPES)
    document = handler.json_body()
    if not isinstance(document, dict) or "resource_types" not in document:
        raise errors.BadRequest('Post body must contain key "resource_types".')
    requested = document["resource_types"]
    if (not isinstance(requested, list)
            or not all(isinstance(item, str) and item in PURGE_TYPES for item in requested)):
        raise errors.BadRequest(f"Resource types must be a sub set of {sorted(PURGE_TYPES)}.")
    return [kind for kind in PURGE_TYPES if kind in requested]

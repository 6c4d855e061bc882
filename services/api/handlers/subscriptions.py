"""Subscription resources (rest-v2.md §6): list, create, get, update, delete,
confirm.

Handlers check the request in the spec's order with the reference's wording
(``herald.common.subscriptions``), then call storage once; whether a create
answers 201 or 409, and whether a confirmation message is sent, follows from
storage's reply. Delivery statistics (``delivery``) appear only on the GET of
one subscription: python-zaqarclient ignores unknown keys there.

Tenancy: storage looks every subscription up by the caller's (project,
queue, id), confirmation included (the reference checks the project only),
so another project's or queue's id is a 404 (a 204 for DELETE).
"""

from __future__ import annotations

from typing import Any

from herald.api import errors as api_errors
from herald.api.handlers.base import BaseHandler
from herald.api.validation.body import DOC_TYPE, parse_json
from herald.api.validation.query import render_query
from herald.common import errors
from herald.common import subscriptions as rules

DEFAULT_PAGE = 10
DUPLICATE = ("Such subscription already exists.Subscriptions are unique by project + queue "
             "+ subscriber URI.")


def _collection_href(queue: str) -> str:
    return f"/v2/queues/{queue}/subscriptions"


class SubscriptionCollectionHandler(BaseHandler):
    ALLOWED = ("GET", "POST")

    async def get(self, queue_name: str) -> None:
        marker = self.query.get_str("marker")
        limit = self.query.get_int("limit")
        maximum = self.conf.limits.max_subscriptions_per_page
        if limit is not None and not 0 < limit <= maximum:
            raise errors.BadRequest(
                f"Limit must be at least 1 and may not be greater than {maximum}.")
        limit = DEFAULT_PAGE if limit is None else limit
        result = await self.storage_call(
            "Subscriptions could not be listed.",
            self.storage.subscription_list(self.ctx, queue_name, marker, limit))
        items = result["subscriptions"]
        links = []
        if items:
            query = render_query([("limit", limit), ("marker", items[-1]["id"])])
            links.append({"rel": "next", "href": f"{self.request.path}?{query}"})
        self.reply_json({"subscriptions": items, "links": links})

    async def post(self, queue_name: str) -> None:
        # Reference order: the queue exists before the body is even looked at.
        await self.storage_call("Subscription could not be created.",
                                self.storage.queue_create(self.ctx, queue_name, {}))
        document: Any = parse_json(self.request.body) if self.has_body() else {}
        if not isinstance(document, dict):
            raise errors.InvalidBody(DOC_TYPE)
        subscriber = document.get("subscriber")
        if subscriber is None:
            raise errors.BadRequest("Missing parameter subscriber in body.")
        rules.validate_subscriber(subscriber, self.conf.notification.subscriber_types)
        options = document.get("options")
        rules.validate_options(options)
        ttl = document.get("ttl")
        rules.validate_ttl(ttl)
        result = await self.storage_call(
            "Subscription could not be created.",
            self.storage.subscription_create(self.ctx, queue_name, subscriber, ttl or None,
                                             options or {}, send_confirmation=True))
        location = _collection_href(queue_name)
        if not result["created"] and result["confirmed"]:
            raise api_errors.APIError(409, errors.Conflict.title, DUPLICATE,
                                      headers={"Location": location})
        self.set_header("Location", location)
        self.reply_json({"subscription_id": result["subscription_id"]}, status=201)


class SubscriptionHandler(BaseHandler):
    ALLOWED = ("GET", "PATCH", "DELETE")

    async def get(self, queue_name: str, subscription_id: str) -> None:
        found = await self.storage_call(
            "Subscription could not be retrieved.",
            self.storage.subscription_get(self.ctx, queue_name, subscription_id))
        self.reply_json(found)

    async def patch(self, queue_name: str, subscription_id: str) -> None:
        document: Any = parse_json(self.request.body) if self.has_body() else None
        if not document and not isinstance(document, list):
            raise errors.BadRequest("No subscription to create.")
        if not isinstance(document, dict):
            raise errors.BadRequest("Subscriptions must be a dict.")
        changes: dict[str, Any] = {}
        if "subscriber" in document:
            rules.validate_subscriber(document["subscriber"],
                                      self.conf.notification.subscriber_types)
            changes["subscriber"] = document["subscriber"]
        if "options" in document:
            rules.validate_options(document["options"])
            changes["options"] = document["options"] or {}
        if "ttl" in document:
            ttl = document["ttl"]
            if isinstance(ttl, bool) or not isinstance(ttl, int):
                raise errors.BadRequest("TTL must be an integer.")
            rules.validate_ttl(ttl)
            if ttl < rules.MIN_SUBSCRIPTION_TTL:  # 0 is not "use the default" here
                raise errors.BadRequest("The TTL for a subscription must be at least "
                                        f"{rules.MIN_SUBSCRIPTION_TTL} seconds long.")
            changes["ttl"] = ttl
        if not changes:
            raise api_errors.APIError(
                400, "Unable to update subscription",
                "The subscription could not be updated: none of subscriber, ttl, options "
                "was given.")
        await self.storage_call(
            "Subscription could not be updated.",
            self.storage.subscription_update(self.ctx, queue_name, subscription_id, changes))
        self.set_header("Location", self.request.path)
        self.reply_empty(204)

    async def delete(self, queue_name: str, subscription_id: str) -> None:
        await self.storage_call(
            "Subscription could not be deleted.",
            self.storage.subscription_delete(self.ctx, queue_name, subscription_id))
        self.reply_empty(204)


class SubscriptionConfirmHandler(BaseHandler):
    ALLOWED = ("PUT",)

    async def put(self, queue_name: str, subscription_id: str) -> None:
        document: Any = parse_json(self.request.body) if self.has_body() else {}
        confirmed = document.get("confirmed") if isinstance(document, dict) else None
        if not isinstance(confirmed, bool):
            raise errors.BadRequest("The 'confirmed' should be boolean.")
        await self.storage_call(
            "Subscription could not be confirmed.",
            self.storage.subscription_confirm(self.ctx, queue_name, subscription_id,
                                              confirmed))
        self.set_header("Location", self.request.path)
        self.reply_empty(204)

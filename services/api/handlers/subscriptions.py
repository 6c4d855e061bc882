"""Subscription resources (rest-v2.md §6): list, create, get, update, delete,
confirm.

Handlers check the request in the spec's order with the reference's wording
(``herald.common.edge.subscriptions``), then call storage once; whether a create
answers 201 or 409, and whether a confirmation message is sent, follows from
storage's reply. Delivery statistics (``delivery``) and the webhook signing
secret (``options.signing_secret``) appear only on the GET of one
subscription, the secret also in the create reply (``signing_secret``):
python-zaqarclient ignores unknown keys there.

Tenancy: storage looks every subscription up by the caller's (project,
queue, id), confirmation included (the reference checks the project only),
so another project's or queue's id is a 404 (a 204 for DELETE).
"""

from __future__ import annotations

from typing import Any

from herald.api import errors as api_errors
from herald.api.handlers.base import BaseHandler
from herald.api.query_string import render_query
from herald.common import errors
from herald.common.edge import limits as limit_rules
from herald.common.edge import subscriptions as rules
from herald.common.edge.bodies import parse_json
from herald.common.edge.limits import DEFAULT_PAGE

DUPLICATE = ("Such subscription already exists.Subscriptions are unique by project + queue "
             "+ subscriber URI.")


def _collection_href(queue: str) -> str:
    return f"/v2/queues/{queue}/subscriptions"


class SubscriptionCollectionHandler(BaseHandler):
    ALLOWED = ("GET", "POST")

    async def get(self, queue_name: str) -> None:
        marker = self.query.get_str("marker")
        limit = self.query.get_int("limit")
        limit_rules.subscription_page(limit, self.conf.limits)
        limit = DEFAULT_PAGE if limit is None else limit
        result = await self.storage.subscription_list(self.ctx, queue_name, marker, limit)
        items = result["subscriptions"]
        links = []
        if items:
            query = render_query([("limit", limit), ("marker", items[-1]["id"])])
            links.append({"rel": "next", "href": f"{self.request.path}?{query}"})
        self.reply_json({"subscriptions": items, "links": links})

    async def post(self, queue_name: str) -> None:
        # Reference order: the queue exists before the body is even looked at.
        await self.unavailable_as("Subscription could not be created.",
                                  self.storage.queue_create(self.ctx, queue_name, {}))
        document: Any = parse_json(self.request.body) if self.has_body() else {}
        subscriber, options, ttl = rules.rest_create(
            document, self.conf.notification.subscriber_types, self.conf.limits)
        result = await self.storage.subscription_create(
            self.ctx, queue_name, subscriber, ttl or None, options or {}, send_confirmation=True)
        location = _collection_href(queue_name)
        if not result["created"] and result["confirmed"]:
            raise api_errors.APIError(409, errors.Conflict.title, DUPLICATE,
                                      headers={"Location": location})
        self.set_header("Location", location)
        reply = {"subscription_id": result["subscription_id"]}
        if result.get("signing_secret"):
            # Herald extension: the webhook signing secret, supplied or generated.
            reply["signing_secret"] = result["signing_secret"]
        self.reply_json(reply, status=201)


class SubscriptionHandler(BaseHandler):
    ALLOWED = ("GET", "PATCH", "DELETE")

    async def get(self, queue_name: str, subscription_id: str) -> None:
        found = await self.storage.subscription_get(self.ctx, queue_name, subscription_id)
        self.reply_json(found)

    async def patch(self, queue_name: str, subscription_id: str) -> None:
        document: Any = parse_json(self.request.body) if self.has_body() else None
        changes = rules.rest_update(document, self.conf.notification.subscriber_types,
                                    self.conf.limits)
        if not changes:
            raise api_errors.APIError(
                400, "Unable to update subscription",
                "The subscription could not be updated: none of subscriber, ttl, options "
                "was given.")
        await self.storage.subscription_update(self.ctx, queue_name, subscription_id, changes)
        self.set_header("Location", self.request.path)
        self.reply_empty(204)

    async def delete(self, queue_name: str, subscription_id: str) -> None:
        await self.storage.subscription_delete(self.ctx, queue_name, subscription_id)
        self.reply_empty(204)


class SubscriptionConfirmHandler(BaseHandler):
    ALLOWED = ("PUT",)

    async def put(self, queue_name: str, subscription_id: str) -> None:
        document: Any = parse_json(self.request.body) if self.has_body() else {}
        confirmed = rules.confirmed(document)
        await self.storage.subscription_confirm(self.ctx, queue_name, subscription_id, confirmed)
        self.set_header("Location", self.request.path)
        self.reply_empty(204)

"""Websocket subscription actions (websocket.md §5 "Subscriptions", §6).

``subscription_create`` with a ``subscriber`` is an ordinary subscription
(REST's validation; a duplicate is **409** with the string body
``"Subscription <queue> not created."``, and no confirmation message is
sent over this path). Without one, the subscriber is the requesting
connection: storage stores an ``http`` URI naming this gateway and the
connection, the connection remembers the frame kind of that request for its
pushes (``push_binary``) and that it must clean up on close
(``has_ws_subscriptions``).

Replies use the websocket shapes: no links, no ``delivery`` statistics; a
create reply carries a webhook subscriber's ``signing_secret`` as REST's does.
Handlers only validate and call storage; frames and pushes are elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from oslo_config import cfg

from herald.common import errors
from herald.common.edge import headers, limits
from herald.common.edge import subscriptions as rules
from herald.common.rpc.storage_api import StorageAPI
from herald.ws_gateway.actions import ActionError, ActionRequest

Reply = tuple[int, Any]

_WS_KEYS = ("id", "source", "subscriber", "ttl", "age", "options", "confirmed")


def _ws_subscription(stored: dict[str, Any]) -> dict[str, Any]:
    return {key: stored[key] for key in _WS_KEYS}


class SubscriptionActions:
    def __init__(self, storage: StorageAPI, conf: cfg.ConfigOpts) -> None:
        self._storage = storage
        self._conf = conf
        self.handlers: dict[str, Callable[[ActionRequest], Awaitable[Reply]]] = {
            "subscription_create": self.subscription_create,
            "subscription_list": self.subscription_list,
            "subscription_get": self.subscription_get,
            "subscription_delete": self.subscription_delete,
        }

    async def subscription_create(self, req: ActionRequest) -> Reply:
        queue = req.body["queue_name"]
        headers.websocket_queue_identification(queue, req.ctxt.project_id)
        subscriber = req.body.get("subscriber")
        options = req.body.get("options", {})
        ttl = req.body.get("ttl", self._conf.limits.default_subscription_ttl)
        connection = None
        if subscriber is None:
            if req.connection is None:
                raise errors.BadRequest(rules.MISSING_SUBSCRIBER)
            connection = {"gateway_id": req.connection.gateway.member_id,
                          "connection_id": req.connection.connection_id}
        rules.check_fields(subscriber, options, ttl, self._conf.notification.subscriber_types,
                           self._conf.limits, zero_ttl_is_default=False)
        result = await self._storage.subscription_create(
            req.ctxt, queue, subscriber, ttl or None, options or {},
            send_confirmation=False, connection=connection)
        if not result["created"]:
            raise ActionError(409, f"Subscription {queue} not created.")
        if req.connection is not None:
            # websocket.md §6: pushes use the frame kind of the last
            # successful subscription_create of the connection.
            req.connection.push_binary = req.binary
            if connection is not None:
                req.connection.has_ws_subscriptions = True
        reply = {"subscription_id": result["subscription_id"],
                 "message": f"Subscription {queue} created."}
        if result.get("signing_secret"):
            # A webhook subscriber's signing secret (none for the connection).
            reply["signing_secret"] = result["signing_secret"]
        return 201, reply

    async def subscription_list(self, req: ActionRequest) -> Reply:
        limit = req.body.get("limit", limits.DEFAULT_PAGE)
        limits.subscription_page(limit, self._conf.limits)
        result = await self._storage.subscription_list(
            req.ctxt, req.body["queue_name"], req.body.get("marker"), limit)
        return 200, {"subscriptions": [_ws_subscription(s) for s in result["subscriptions"]]}

    async def subscription_get(self, req: ActionRequest) -> Reply:
        stored = await self._storage.subscription_get(
            req.ctxt, req.body["queue_name"], req.body["subscription_id"])
        return 200, _ws_subscription(stored)

    async def subscription_delete(self, req: ActionRequest) -> Reply:
        sid = req.body["subscription_id"]
        await self._storage.subscription_delete(req.ctxt, req.body["queue_name"], sid)
        return 204, f"Subscription {sid} removed."

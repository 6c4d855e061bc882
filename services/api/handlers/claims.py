"""Claim resources (rest-v2.md §5): create, get, renew, release.

Validation order and defaults live in ``herald.common.edge.claims``; this module maps
the storage replies to the wire shapes (message hrefs carry ``?claim_id=``).
``?wait=<seconds>`` on create long-polls (``herald.api.longpoll``).
Storage looks a claim up by the caller's (project, queue, id): another
project's or queue's claim id is a 404 (a 204 for the release).
"""

from __future__ import annotations

from typing import Any

from herald.api import wire
from herald.api.handlers.base import BaseHandler
from herald.api.longpoll import LongPollMixin, claimed_something, parse_wait
from herald.common import errors
from herald.common.edge import claims as rules


class ClaimCollectionHandler(LongPollMixin, BaseHandler):
    ALLOWED = ("POST",)

    async def post(self, queue_name: str) -> None:
        limit = self.query.get_int("limit")
        document = self.json_body() if self.has_body() else None
        ttl, grace, limit = rules.rest_create(document, limit, self.conf.limits)
        wait = parse_wait(self.query)

        async def attempt() -> dict[str, Any]:
            return await self.storage.claim_create(self.ctx, queue_name, ttl=ttl, grace=grace,
                                                   limit=limit)

        result = await self.poll(self.ctx.project_id, queue_name, wait, attempt,
                                 claimed_something)
        claim_id = result.get("claim_id")
        if claim_id and self.client_gone.is_set():
            # The client left while this claim was being taken: nobody will
            # process its messages, so give them back at once rather than
            # when the claim expires.
            await self.storage.claim_delete(self.ctx, queue_name, claim_id)
            return
        if not claim_id or not result.get("messages"):
            self.reply_empty(204)
            return
        messages = [wire.message_object(queue_name, {**m, "claim_id": claim_id})
                    for m in result["messages"]]
        self.set_header("Location", wire.claim_href(queue_name, claim_id))
        self.reply_json({"messages": messages}, status=201)


class ClaimHandler(BaseHandler):
    ALLOWED = ("GET", "PATCH", "DELETE")

    async def get(self, queue_name: str, claim_id: str) -> None:
        claim = await self.storage.claim_get(self.ctx, queue_name, claim_id)
        self.reply_json({
            "age": claim["age"],
            "ttl": claim["ttl"],
            "href": wire.claim_href(queue_name, claim_id),
            "messages": [wire.message_object(queue_name, {**m, "claim_id": claim_id})
                         for m in claim["messages"]],
        })

    async def patch(self, queue_name: str, claim_id: str) -> None:
        if not self.has_body():
            raise errors.InvalidBody("Request body can not be empty")
        ttl, grace = rules.rest_update(self.json_body(), self.conf.limits)
        await self.storage.claim_update(self.ctx, queue_name, claim_id, ttl=ttl, grace=grace)
        self.reply_empty(204)

    async def delete(self, queue_name: str, claim_id: str) -> None:
        await self.storage.claim_delete(self.ctx, queue_name, claim_id)
        self.reply_empty(204)

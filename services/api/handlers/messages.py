"""Message resources (rest-v2.md §4): post, list, get by ids, bulk delete, pop,
get one, delete one; and release one claimed message (Herald extension,
docs/release.md).

Per-queue rules that need the queue's metadata (post size cap, default ttl,
delays) are applied by the storage worker; everything that depends only on
the request is checked here, before any storage call. ``?wait=<seconds>`` on
a listing long-polls (``herald.api.longpoll``).
"""

from __future__ import annotations

from typing import Any

from herald.api import errors as api_errors
from herald.api import wire
from herald.api.handlers.base import BaseHandler
from herald.api.longpoll import LongPollMixin, listed_something, parse_wait
from herald.api.query_string import render_query
from herald.common import errors, ids
from herald.common.edge import limits as limit_rules
from herald.common.edge import messages as rules
from herald.common.edge import shapes
from herald.common.edge.headers import idempotency_key_ok
from herald.common.edge.limits import DEFAULT_PAGE

#: Herald extension: a retried post with the same key returns the first ids.
IDEMPOTENCY_HEADER = "Idempotency-Key"


class MessageCollectionHandler(LongPollMixin, BaseHandler):
    ALLOWED = ("GET", "POST", "DELETE")

    async def post(self, queue_name: str) -> None:
        limits = self.conf.limits
        size = self.body_length()
        rules.post_size(size, limits)
        messages = rules.rest_post(self.json_body(), limits)
        key = self.request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not idempotency_key_ok(key):
            raise api_errors.APIError(
                400, "Invalid header value",
                "The Idempotency-Key header must be 1 to 255 printable ASCII characters.")
        message_ids = await self.storage.message_post(self.ctx, queue_name, messages, size,
                                                      idempotency_key=key)
        self.set_header("Location",
                        f"/v2/queues/{queue_name}/messages?ids={','.join(message_ids)}")
        self.reply_json(
            {"resources": [wire.message_href(queue_name, mid) for mid in message_ids]},
            status=201)

    async def get(self, queue_name: str) -> None:
        message_ids = self.query.get_list("ids")
        if message_ids is not None:
            await self._get_many(queue_name, message_ids)
        else:
            await self._list(queue_name)

    async def _get_many(self, queue_name: str, message_ids: list[str]) -> None:
        rules.ids_count(message_ids, self.conf.limits)
        found = await self.storage.message_get_many(self.ctx, queue_name, message_ids)
        if not found:
            raise errors.NotFound(
                f"No messages with IDs: {message_ids} found in the queue {queue_name} "
                f"for project {self.ctx.project_id}.")
        self.reply_json({"messages": [wire.message_object(queue_name, m) for m in found]})

    async def _list(self, queue_name: str) -> None:
        query = self.query
        marker = query.get_str("marker")
        limit = query.get_int("limit")
        echo = query.get_bool("echo")
        include_claimed = query.get_bool("include_claimed")
        include_delayed = query.get_bool("include_delayed")
        limit_rules.message_page(limit, self.conf.limits)
        wait = parse_wait(query)

        async def attempt() -> dict[str, Any]:
            return await self.storage.message_list(
                self.ctx, queue_name, marker=marker,
                limit=DEFAULT_PAGE if limit is None else limit,
                echo=bool(echo), include_claimed=bool(include_claimed),
                include_delayed=bool(include_delayed))

        result = await self.poll(self.ctx.project_id, queue_name, wait, attempt,
                                 listed_something)
        if self.client_gone.is_set():
            return
        messages = [wire.message_object(queue_name, m) for m in result["messages"]]
        links = []
        if messages:
            params: list[tuple[str, object]] = [
                (key, value) for key, value in (
                    ("limit", limit), ("echo", echo), ("include_claimed", include_claimed),
                    ("include_delayed", include_delayed))
                if value is not None]
            next_marker = result.get("marker") or marker
            if next_marker is not None:
                params.append(("marker", next_marker))
            links.append({"rel": "next", "href": f"{self.request.path}?{render_query(params)}"})
        self.reply_json({"messages": messages, "links": links})

    async def delete(self, queue_name: str) -> None:
        query = self.query
        message_ids = query.get_list("ids")
        pop = query.get_int("pop")
        claim_ids = query.get_list("claim_ids")
        rules.bulk_delete(message_ids, pop, claim_ids, self.conf.limits)
        if pop is not None:
            popped = await self.storage.message_pop(self.ctx, queue_name, pop)
            self.reply_json({"messages": [shapes.popped(m) for m in popped]})
            return
        assert message_ids is not None  # validate_bulk_delete guarantees one of them
        if not self.conf.limits.message_delete_with_claim_id:
            claim_ids = None  # only meaningful (and checked) in that mode
        await self.storage.message_delete_many(self.ctx, queue_name, message_ids, claim_ids)
        self.reply_empty(204)


class MessageHandler(BaseHandler):
    ALLOWED = ("GET", "DELETE")

    async def get(self, queue_name: str, message_id: str) -> None:
        # A ?claim_id= on GET is ignored, as in the reference.
        stored = await self.storage.message_get(self.ctx, queue_name, message_id)
        self.reply_json(wire.message_object(queue_name, stored))

    async def delete(self, queue_name: str, message_id: str) -> None:
        claim_id = self.query.get_str("claim_id")
        if claim_id is not None and not ids.is_valid_id(claim_id):
            # Decided before any lookup: 400 even when the message does not exist.
            raise errors.ClaimMismatch("The specified claim does not exist or has expired.")
        await self.storage.message_delete(self.ctx, queue_name, message_id, claim_id)
        self.reply_empty(204)


class MessageReleaseHandler(BaseHandler):
    """``POST .../messages/{id}/release?claim_id=<claim>``, body ``{"delay": s}``:
    the message leaves its claim and is claimable again after the delay."""

    ALLOWED = ("POST",)

    async def post(self, queue_name: str, message_id: str) -> None:
        claim_id = rules.release_claim_id(self.query.get_str("claim_id"))
        delay = rules.release_delay(self.json_body() if self.has_body() else None,
                                    self.conf.limits)
        await self.storage.message_release(self.ctx, queue_name, message_id, claim_id, delay)
        self.reply_empty(204)

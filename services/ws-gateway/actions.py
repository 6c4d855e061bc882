"""Websocket action handlers: queues, messages and claims (websocket.md §5).

Each handler validates its body fields (``herald.common.edge``, the rules
REST applies too, in the websocket's wording), calls
the storage RPC API once or twice and returns ``(status, body)`` in the
websocket shapes, which are NOT the REST shapes (no ``href``, message
objects ``{"id", "claim_id", "ttl", "age", "body"}``, strings as bodies of
some 201/204 replies).

Errors: a handler raises ``herald.common.errors`` types; ``error_reply``
turns them into the reference's ``{"exception", "error"}`` bodies, with the
per-action summary the reference uses for storage failures (503).

Handlers never touch the connection or the frame encoding; the schema has
already checked field types, so handlers only check values. ``message_list``
and ``claim_create`` take a ``wait`` (seconds, 0..20) and then long-poll
(``herald.common.rpc.wakeups``), stopping when the connection closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from oslo_config import cfg

from herald.common import errors
from herald.common.context import RequestContext
from herald.common.edge import claims, headers, limits, messages, queues, shapes, unavailable
from herald.common.rpc import wakeups
from herald.common.rpc.storage_api import StorageAPI
from herald.ws_gateway import claim_release, codec

Reply = tuple[int, Any]
T = TypeVar("T")



@dataclasses.dataclass(frozen=True)
class ActionRequest:
    """One validated request: its context and its (defaulted) body and headers."""

    action: str
    ctxt: RequestContext
    body: dict[str, Any]
    headers: dict[str, Any]
    binary: bool = False  # came in a msgpack frame (size limits measure that form)
    #: The sending ``Connection`` (connection subscribers); None in unit tests.
    connection: Any = None


class ActionError(Exception):
    """A handler's own error reply (status and body chosen by the handler)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _ws_message(stored: dict[str, Any], claim_id: str | None = None) -> dict[str, Any]:
    """StoredMessage -> websocket message object (no href, no checksum;
    ``group`` only for a message posted with one)."""
    obj = {
        "id": stored["id"],
        "claim_id": claim_id,
        "ttl": stored["ttl"],
        "age": stored["age"],
        "body": stored["body"],
    }
    if stored.get("group") is not None:
        obj["group"] = stored["group"]
    return obj


class Actions:
    """The handlers, bound to one storage API and the ``[limits]`` options."""

    def __init__(self, storage: StorageAPI, conf: cfg.ConfigOpts) -> None:
        self._storage = storage
        self._conf = conf
        self._limits = conf.limits
        self.handlers: dict[str, Callable[[ActionRequest], Awaitable[Reply]]] = {
            "queue_list": self.queue_list,
            "queue_create": self.queue_create,
            "queue_get": self.queue_get,
            "queue_delete": self.queue_delete,
            "queue_get_stats": self.queue_get_stats,
            "queue_purge": self.queue_purge,
            "message_list": self.message_list,
            "message_get": self.message_get,
            "message_get_many": self.message_get_many,
            "message_post": self.message_post,
            "message_delete": self.message_delete,
            "message_delete_many": self.message_delete_many,
            "message_release": self.message_release,
            "claim_create": self.claim_create,
            "claim_get": self.claim_get,
            "claim_update": self.claim_update,
            "claim_delete": self.claim_delete,
        }
        # Subscriptions and redrive live in modules of their own (they import this one).
        from herald.ws_gateway.redrive_actions import RedriveActions
        from herald.ws_gateway.subscription_actions import SubscriptionActions

        self.handlers.update(SubscriptionActions(storage, conf).handlers)
        self.handlers.update(RedriveActions(storage).handlers)

    # -- queues -----------------------------------------------------------

    async def queue_list(self, req: ActionRequest) -> Reply:
        limit = req.body.get("limit", limits.DEFAULT_PAGE)
        limits.queue_page(limit, self._limits)
        detailed = req.body.get("detailed", False)
        result = await self._storage.queue_list(
            req.ctxt, marker=req.body.get("marker"), limit=limit, detailed=detailed,
            name=None, metadata_filters={}, with_count=False,
        )
        listed = []
        for queue in result["queues"]:
            item = {"name": queue["name"]}
            if detailed:
                # Raw stored metadata: the websocket shows no reserved defaults.
                item["metadata"] = queue.get("metadata") or {}
            listed.append(item)
        return 200, {"queues": listed}

    async def queue_create(self, req: ActionRequest) -> Reply:
        name = req.body["queue_name"]
        metadata = req.body.get("metadata", {})
        headers.websocket_queue_identification(name, req.ctxt.project_id)
        queues.metadata_size(codec.serialized_size(metadata, req.binary), self._limits)
        queues.validate_reserved(metadata, self._limits)
        created = await self._storage.queue_create(req.ctxt, name, metadata)
        return (201 if created else 204), f"Queue {name} created."

    async def queue_get(self, req: ActionRequest) -> Reply:
        metadata = await self._storage.queue_get_metadata(req.ctxt, req.body["queue_name"])
        return 200, metadata or {}

    async def queue_delete(self, req: ActionRequest) -> Reply:
        name = req.body["queue_name"]
        await self._storage.queue_delete(req.ctxt, name)
        return 204, f"Queue {name} removed."

    async def queue_get_stats(self, req: ActionRequest) -> Reply:
        name = req.body["queue_name"]
        stats = await self._storage.queue_stats(req.ctxt, name)
        if not stats.get("total"):
            # Only an empty result can mean "no such queue" (websocket: 404,
            # unlike REST); one more call tells an empty queue from a missing one.
            if await self._storage.queue_get_metadata(req.ctxt, name) is None:
                raise ActionError(404, {"messages": {"claimed": 0, "free": 0, "total": 0}})
        for key in ("oldest", "newest"):
            if key in stats:  # Zaqar's stored shape, id kept (no checksum on websocket)
                stats[key] = shapes.stats_message(stats[key], with_checksum=False)
        return 200, {"messages": stats}

    async def queue_purge(self, req: ActionRequest) -> Reply:
        types = req.body.get("resource_types", list(queues.PURGE_TYPES))
        queues.purge_types(types)
        await self._storage.queue_purge(req.ctxt, req.body["queue_name"], list(types))
        return 204, {}

    # -- messages ---------------------------------------------------------

    async def message_list(self, req: ActionRequest) -> Reply:
        headers.websocket_client_id(req.ctxt.client_id, self._limits)
        limit = req.body.get("limit", limits.DEFAULT_PAGE)
        limits.message_page(limit, self._limits)
        wait = wakeups.validate_wait(req.body.get("wait", 0))

        async def attempt() -> dict[str, Any]:
            return await self._storage.message_list(
                req.ctxt, req.body["queue_name"], marker=req.body.get("marker"), limit=limit,
                echo=req.body.get("echo", False),
                include_claimed=req.body.get("include_claimed", False),
                include_delayed=req.body.get("include_delayed", False),
            )

        result = await _poll(req, wait, attempt, lambda r: bool(r["messages"]))
        # No links and no next marker: the websocket API cannot paginate (spec).
        return 200, {"messages": [_ws_message(m) for m in result["messages"]]}

    async def message_get(self, req: ActionRequest) -> Reply:
        stored = await self._storage.message_get(
            req.ctxt, req.body["queue_name"], req.body["message_id"])
        # One object under the plural key: the reference's shape.
        return 200, {"messages": _ws_message(stored)}

    async def message_get_many(self, req: ActionRequest) -> Reply:
        ids = req.body["message_ids"]
        limits.message_page(len(ids), self._limits)
        # A non-string id can never name a message: skipped like an unknown one.
        wanted = [i for i in ids if isinstance(i, str)]
        found = await self._storage.message_get_many(req.ctxt, req.body["queue_name"], wanted)
        return 200, {"messages": [_ws_message(m) for m in found]}

    async def message_post(self, req: ActionRequest) -> Reply:
        name = req.body["queue_name"]
        raw_messages = req.body["messages"]
        # The queue is created if missing, so its name must be valid.
        headers.websocket_queue_identification(name, req.ctxt.project_id)
        size = codec.serialized_size(raw_messages, req.binary)
        messages.post_size(size, self._limits)
        cleaned = messages.websocket_clean_messages(raw_messages)
        # The reference's order: Client-ID after the fields, before the ranges.
        headers.websocket_client_id(req.ctxt.client_id, self._limits)
        messages.check_messages(cleaned, self._limits)
        # Herald extension: the websocket spelling of REST's Idempotency-Key.
        key = req.body.get("idempotency_key")
        if key is not None and not headers.idempotency_key_ok(key):
            raise errors.BadRequest(
                "The idempotency_key must be 1 to 255 printable ASCII characters.")
        ids = await self._storage.message_post(req.ctxt, name, cleaned, body_size=size,
                                               idempotency_key=key)
        return 201, {"message_ids": ids}

    async def message_delete(self, req: ActionRequest) -> Reply:
        try:
            await self._storage.message_delete(
                req.ctxt, req.body["queue_name"], req.body["message_id"],
                claim_id=req.body.get("claim_id"))
        except errors.ClaimMismatch as exc:
            # The storage's description is the reference's summary for both
            # cases ("not currently claimed" / "does not exist or has expired").
            raise ActionError(400, {"exception": exc.description,
                                    "error": exc.description}) from exc
        except errors.MessageIsClaimed as exc:
            raise ActionError(403, {
                "exception": exc.description,
                "error": "This message is claimed; it cannot be deleted without a valid "
                         "claim ID.",
            }) from exc
        except errors.MessageDoesNotExist:
            pass  # deleting a missing message is a success (204)
        return 204, {}

    async def message_delete_many(self, req: ActionRequest) -> Reply:
        ids = req.body.get("message_ids")
        pop = req.body.get("pop")
        # As the reference: claim_ids are only read when the option requires them.
        claim_ids = (req.body.get("claim_ids")
                     if self._limits.message_delete_with_claim_id else None)
        messages.bulk_delete(ids, pop, claim_ids, self._limits)
        name = req.body["queue_name"]
        if pop:
            popped = await self._storage.message_pop(req.ctxt, name, pop)
            return 200, {"messages": [shapes.popped(m, with_checksum=False) for m in popped]}
        wanted = [i for i in ids if isinstance(i, str)]
        claim_filter = None if claim_ids is None else [c for c in claim_ids if isinstance(c, str)]
        await self._storage.message_delete_many(req.ctxt, name, wanted, claim_filter)
        return 204, {}

    async def message_release(self, req: ActionRequest) -> Reply:
        """Herald extension (docs/release.md): the message leaves its claim,
        claimable again after ``delay`` seconds. Refusals are REST's: 403
        (another live claim holds it), 404 (no such message, or the claim
        is unknown, expired or not the message's)."""
        claim_id = messages.release_claim_id(req.body["claim_id"])
        delay = messages.release_delay({"delay": req.body.get("delay")}, self._limits)
        await self._storage.message_release(req.ctxt, req.body["queue_name"],
                                            req.body["message_id"], claim_id, delay)
        return 204, {}

    # -- claims -----------------------------------------------------------

    async def claim_create(self, req: ActionRequest) -> Reply:
        limit = req.body.get("limit", limits.DEFAULT_CLAIM_LIMIT)
        ttl = req.body.get("ttl", self._limits.default_claim_ttl)
        grace = req.body.get("grace", self._limits.default_claim_grace)
        claims.check_create(ttl, grace, limit, self._limits)
        wait = wakeups.validate_wait(req.body.get("wait", 0))
        connection = self._registration(req)

        async def attempt() -> dict[str, Any]:
            return await self._storage.claim_create(
                req.ctxt, req.body["queue_name"], ttl=ttl, grace=grace, limit=limit,
                connection=connection)

        result = await _poll(req, wait, attempt, lambda r: r["claim_id"] is not None)
        claim_id = result["claim_id"]
        if claim_id is None:
            return 204, {"claim_id": None}
        gone = _gone(req)
        if gone is not None and gone.is_set():
            # The connection closed while the claim was taken: nobody can
            # receive these messages, so release them now, not at claim expiry.
            await self._storage.claim_delete(req.ctxt, req.body["queue_name"], claim_id)
        return 201, {"claim_id": claim_id,
                     "messages": [_ws_message(m, claim_id) for m in result["messages"]]}

    async def claim_get(self, req: ActionRequest) -> Reply:
        claim_id = req.body["claim_id"]
        try:
            claim = await self._storage.claim_get(req.ctxt, req.body["queue_name"], claim_id)
        except errors.NotFound as exc:
            raise _claim_not_found(claim_id, exc) from exc
        return 200, {"age": claim["age"], "ttl": claim["ttl"],
                     "messages": [_ws_message(m, claim_id) for m in claim["messages"]]}

    async def claim_update(self, req: ActionRequest) -> Reply:
        claim_id = req.body["claim_id"]
        # Quirk (kept): a missing ttl/grace is reset to the default, as REST.
        ttl = req.body.get("ttl", self._limits.default_claim_ttl)
        grace = req.body.get("grace", self._limits.default_claim_grace)
        claims.check_ttl(ttl, self._limits)
        connection = self._registration(req)
        try:
            await self._storage.claim_update(req.ctxt, req.body["queue_name"], claim_id,
                                             ttl=ttl, grace=grace, connection=connection)
        except errors.NotFound as exc:
            raise _claim_not_found(claim_id, exc) from exc
        return 204, f"Claim {claim_id} updated."

    async def claim_delete(self, req: ActionRequest) -> Reply:
        claim_id = req.body["claim_id"]
        await self._storage.claim_delete(req.ctxt, req.body["queue_name"], claim_id)
        return 204, f"Claim {claim_id} deleted."

    @staticmethod
    def _registration(req: ActionRequest) -> dict[str, str] | None:
        """With ``release_on_close``: the claim's registration with this
        connection (``claim_release``); None otherwise."""
        if not claims.release_on_close(req.body.get(claims.RELEASE_ON_CLOSE),
                                       over_websocket=True):
            return None
        return claim_release.owner(req.connection, req.ctxt.project_id, req.body["queue_name"])


def _gone(req: ActionRequest) -> asyncio.Event | None:
    """Set when the request's connection closed (None without a connection)."""
    return getattr(req.connection, "closed", None)


async def _poll(req: ActionRequest, wait: int, attempt: Callable[[], Awaitable[T]],
                found: Callable[[T], bool]) -> T:
    """``attempt()`` once, or long-polled for ``wait`` seconds (``body.wait``):
    the gateway's event loop waits for a wake-up, no storage call is held."""
    if wait <= 0:
        return await attempt()
    # The gateway owns the wait: a stopping gateway releases it (see service).
    gateway = getattr(req.connection, "gateway", None)
    # No gateway (a dispatcher driven directly): a hub nobody wakes, so the
    # poll lasts until its deadline.
    hub = gateway.waiters if gateway is not None else wakeups.WaiterHub()
    return await wakeups.long_poll(req.ctxt.project_id, req.body["queue_name"], wait,
                                   attempt, found, gone=_gone(req), owner=gateway, hub=hub)


def _claim_not_found(claim_id: str, exc: errors.HeraldError) -> ActionError:
    return ActionError(404, {"exception": exc.description,
                             "error": f"Claim {claim_id} does not exist."})


def error_reply(action: str, exc: BaseException) -> Reply:
    """The reply for an exception raised by the handler of ``action``."""
    if isinstance(exc, ActionError):
        return exc.status, exc.body
    if isinstance(exc, errors.ServiceUnavailable):
        # StorageAPI words a 503 for REST and chains how the call failed,
        # which is what the websocket's "exception" has always said.
        cause = exc.__cause__
        detail = cause if isinstance(cause, errors.ServiceUnavailable) else exc
        return 503, {"exception": detail.description,
                     "error": unavailable.websocket_summary(action)}
    if isinstance(exc, errors.HeraldError) and not isinstance(exc, errors.InternalError):
        # Validation (400), not found (404), conflicts (409), ...: the storage
        # or validation text, no summary.
        return exc.status, {"exception": exc.description, "error": None}
    text = exc.description if isinstance(exc, errors.HeraldError) else str(exc)
    return 500, {"exception": text, "error": "Unexpected error."}

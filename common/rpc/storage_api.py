"""The storage RPC API, version 1.4: the contract between edges and workers.

The api and ws-gateway services call these coroutines; the storage worker's
endpoint (``herald.storage.endpoint.StorageEndpoint``) implements a method of
the same name taking ``(ctxt, **kwargs)``. The project always comes from
``ctxt.project_id``. Arguments and replies are plain JSON values (see
``serializer``). Times in replies are whole seconds (``age``) or ISO 8601
strings (``created``). Failures are raised as ``herald.common.errors`` types.

Shapes used below:

``StoredMessage``::

    {"id": str, "body": <any JSON>, "ttl": int, "age": int,
     "claim_id": str | None,   # the live claim holding it, else None
     "claim_count": int, "checksum": str | None,
     "created": "YYYY-MM-DDTHH:MM:SSZ"}

The edge turns a StoredMessage into the wire shape (href, no claim_count...).

``Subscription`` (1.1)::

    {"id": str, "source": <queue>, "subscriber": str, "ttl": int, "age": int,
     "options": {...}, "confirmed": bool}

``subscription_get`` adds ``"delivery": {"attempts", "delivered", "failed",
"pending", "last_attempt", "last_status", "last_error", "last_success",
"last_failure", "consecutive_failures", "healthy"}`` (statistics of the
deliveries to it; times ISO 8601 or None; the last three since 1.3).

Adding a method or an optional argument is a minor version bump (1.x); the
edge must not call a method the workers might not have yet.

History: 1.0 queues, messages, claims, health. 1.1 subscriptions
(``subscription_*``); ``message_post`` also runs the message pipeline
(notifier stage) in its transaction, with no change to its signature.
1.2 ``batch(ops)``: the edge's coalescer (``herald.common.rpc.coalescer``)
sends concurrent calls as one; ``ops`` is a list of ``{"context":
RequestContext.to_dict(), "method": <any method above>, "args": {kwargs}}``
and the reply a list, in the same order, of ``{"result": <the method's
reply>}`` or ``{"error": {"module", "class", "args"}}`` (rebuilt as the same
``herald.common.errors`` type on the edge). The worker executes the
operations in order and each keeps its own outcome. Nobody calls ``batch``
through this proxy: ``OsloCaller`` does, transparently.

1.3 (Herald extensions, docs/api-extensions.md): ``message_post`` takes an
optional ``idempotency_key``; ``message_deliveries`` and
``subscription_test``; ``claim_create`` records the claim in the delivery
history with ``ctxt.client_id`` (no signature change); ``subscription_get``'s
``delivery`` gains health fields.

1.4 pools and flavors (``pool_*``, ``flavor_*``; rest-v2.md §7-8 as Herald
means them: a pool is an extra database). With ``[DEFAULT] pooling`` on the
workers, ``queue_create`` with ``_flavor`` metadata places the queue on one
of the flavor's pools (BadRequest for an unknown flavor) and every other
method runs on the queue's pool, with no signature change.
"""

from __future__ import annotations

from typing import Any

from herald.common.context import RequestContext
from herald.common.rpc.caller import Caller


class StorageAPI:
    """Client-side proxy of the storage RPC API."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def _call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        return await self._caller.call(ctxt, method, **kwargs)

    # -- health -----------------------------------------------------------

    async def ping(self, ctxt: RequestContext) -> bool:
        """True when the worker reaches its database (raises otherwise)."""
        return await self._call(ctxt, "ping")

    async def health(self, ctxt: RequestContext) -> dict[str, Any]:
        """Detailed health: ``{"storage_reachable": bool, "workers": [member ids],
        "message_volume": {"free", "claimed", "total"}, "operation_status": {...}}``."""
        return await self._call(ctxt, "health")

    # -- queues -----------------------------------------------------------

    async def queue_create(self, ctxt: RequestContext, queue: str,
                           metadata: dict[str, Any]) -> bool:
        """Create the queue; True if new, False if it existed (metadata untouched)."""
        return await self._call(ctxt, "queue_create", queue=queue, metadata=metadata)

    async def queue_get_metadata(self, ctxt: RequestContext, queue: str) -> dict[str, Any] | None:
        """The stored metadata (no defaults filled in), or None if no such queue."""
        return await self._call(ctxt, "queue_get_metadata", queue=queue)

    async def queue_set_metadata(self, ctxt: RequestContext, queue: str,
                                 metadata: dict[str, Any]) -> None:
        """Replace the metadata; raises QueueDoesNotExist."""
        return await self._call(ctxt, "queue_set_metadata", queue=queue, metadata=metadata)

    async def queue_delete(self, ctxt: RequestContext, queue: str) -> None:
        """Delete the queue with its messages and claims (no-op if missing)."""
        return await self._call(ctxt, "queue_delete", queue=queue)

    async def queue_list(self, ctxt: RequestContext, marker: str | None, limit: int,
                         detailed: bool, name: str | None,
                         metadata_filters: dict[str, Any], with_count: bool) -> dict[str, Any]:
        """``{"queues": [{"name": str[, "metadata": {stored}]}], "count": int | None}``.

        Sorted by name, names > marker; ``name`` is a substring filter;
        ``metadata_filters`` keeps queues whose metadata[key] == value;
        ``count`` (all queues of the project) only when ``with_count``."""
        return await self._call(ctxt, "queue_list", marker=marker, limit=limit,
                                detailed=detailed, name=name,
                                metadata_filters=metadata_filters, with_count=with_count)

    async def queue_stats(self, ctxt: RequestContext, queue: str) -> dict[str, Any]:
        """``{"free", "claimed", "total"[, "oldest", "newest"]}``; oldest/newest are
        ``{"id", "age", "created"}`` and present only when total > 0. Zeros if missing."""
        return await self._call(ctxt, "queue_stats", queue=queue)

    async def queue_purge(self, ctxt: RequestContext, queue: str,
                          resource_types: list[str]) -> None:
        """Delete all messages and/or subscriptions of the queue."""
        return await self._call(ctxt, "queue_purge", queue=queue,
                                resource_types=resource_types)

    # -- messages ---------------------------------------------------------

    async def message_post(self, ctxt: RequestContext, queue: str,
                           messages: list[dict[str, Any]], body_size: int,
                           idempotency_key: str | None = None) -> list[str]:
        """Store ``messages`` (each ``{"body", "ttl": int|None[, "delay": raw]}``)
        in one transaction, creating the queue if needed; returns ids in order.

        The worker applies the queue's metadata: ``_default_message_ttl`` for a
        None ttl, the ``_max_messages_post_size`` cap against ``body_size``
        (raw request bytes), and ``_default_message_delay`` (a ``delay`` is only
        honoured, and then validated, when the queue has one).

        ``idempotency_key`` (1.3; sent only when given): a post with a key
        seen on this queue within ``[storage] idempotency_window`` stores
        nothing and returns the first post's ids; the same key with other
        messages raises Conflict."""
        if idempotency_key is None:
            return await self._call(ctxt, "message_post", queue=queue, messages=messages,
                                    body_size=body_size)
        return await self._call(ctxt, "message_post", queue=queue, messages=messages,
                                body_size=body_size, idempotency_key=idempotency_key)

    async def message_deliveries(self, ctxt: RequestContext, queue: str,
                                 message_id: str) -> dict[str, Any]:
        """(1.3) The delivery history of one message, which may be gone already:
        ``{"message_id", "exists": bool, "claims": [{"claim_id", "client_id",
        "claimed_at", "ttl", "grace", "claim_count"}], "pushes": [{
        "subscription_id", "subscriber", "kind", "attempt", "attempted_at",
        "outcome", "status", "error", "latency_ms"}]}``, oldest first, times
        ISO 8601. Raises MessageDoesNotExist when there is neither the
        message nor any history of it."""
        return await self._call(ctxt, "message_deliveries", queue=queue,
                                message_id=message_id)

    async def message_list(self, ctxt: RequestContext, queue: str, marker: str | None,
                           limit: int, echo: bool, include_claimed: bool,
                           include_delayed: bool) -> dict[str, Any]:
        """``{"messages": [StoredMessage], "marker": str | None}`` in posting order.

        ``marker`` is opaque (the last message's position); an uninterpretable
        one gives an empty page. Echo filtering uses ``ctxt.client_id``."""
        return await self._call(ctxt, "message_list", queue=queue, marker=marker, limit=limit,
                                echo=echo, include_claimed=include_claimed,
                                include_delayed=include_delayed)

    async def message_get(self, ctxt: RequestContext, queue: str,
                          message_id: str) -> dict[str, Any]:
        """One StoredMessage; raises MessageDoesNotExist."""
        return await self._call(ctxt, "message_get", queue=queue, message_id=message_id)

    async def message_get_many(self, ctxt: RequestContext, queue: str,
                               message_ids: list[str]) -> list[dict[str, Any]]:
        """The StoredMessages among ``message_ids`` that exist (maybe none)."""
        return await self._call(ctxt, "message_get_many", queue=queue, message_ids=message_ids)

    async def message_delete(self, ctxt: RequestContext, queue: str, message_id: str,
                             claim_id: str | None) -> None:
        """Delete one message honouring claims (MessageIsClaimed / ClaimMismatch)."""
        return await self._call(ctxt, "message_delete", queue=queue, message_id=message_id,
                                claim_id=claim_id)

    async def message_delete_many(self, ctxt: RequestContext, queue: str,
                                  message_ids: list[str],
                                  claim_ids: list[str] | None) -> None:
        """Delete the given messages regardless of claims; with ``claim_ids``
        every claim id must hold one of the messages (else BadRequest)."""
        return await self._call(ctxt, "message_delete_many", queue=queue,
                                message_ids=message_ids, claim_ids=claim_ids)

    async def message_pop(self, ctxt: RequestContext, queue: str,
                          limit: int) -> list[dict[str, Any]]:
        """Atomically remove and return up to ``limit`` unclaimed, visible
        messages, oldest first (StoredMessages)."""
        return await self._call(ctxt, "message_pop", queue=queue, limit=limit)

    # -- claims -----------------------------------------------------------

    async def claim_create(self, ctxt: RequestContext, queue: str, ttl: int, grace: int,
                           limit: int) -> dict[str, Any]:
        """``{"claim_id": str | None, "messages": [StoredMessage]}``; claim_id is
        None (and messages empty) when nothing was claimable."""
        return await self._call(ctxt, "claim_create", queue=queue, ttl=ttl, grace=grace,
                                limit=limit)

    async def claim_get(self, ctxt: RequestContext, queue: str,
                        claim_id: str) -> dict[str, Any]:
        """``{"id", "ttl", "age", "messages": [StoredMessage]}``; raises
        ClaimDoesNotExist when unknown, expired, released or empty."""
        return await self._call(ctxt, "claim_get", queue=queue, claim_id=claim_id)

    async def claim_update(self, ctxt: RequestContext, queue: str, claim_id: str, ttl: int,
                           grace: int) -> None:
        """Renew a live claim; raises ClaimDoesNotExist."""
        return await self._call(ctxt, "claim_update", queue=queue, claim_id=claim_id,
                                ttl=ttl, grace=grace)

    async def claim_delete(self, ctxt: RequestContext, queue: str, claim_id: str) -> None:
        """Release the claim's messages (no-op if unknown)."""
        return await self._call(ctxt, "claim_delete", queue=queue, claim_id=claim_id)

    # -- subscriptions (1.1) ----------------------------------------------

    async def subscription_create(self, ctxt: RequestContext, queue: str,
                                  subscriber: str | None, ttl: int | None,
                                  options: dict[str, Any] | None,
                                  send_confirmation: bool = False,
                                  connection: dict[str, str] | None = None) -> dict[str, Any]:
        """``{"subscription_id": str, "created": bool, "confirmed": bool}``.

        Creates the queue if needed. An existing live subscription of the same
        subscriber is returned with ``created`` False and left unchanged (the
        edge decides between 201 and 409). ``send_confirmation`` (REST) queues
        a SubscriptionConfirmation when confirmation is enabled on the worker
        and the subscription is not confirmed. ``connection``
        (``{"gateway_id", "connection_id"}``) subscribes a websocket
        connection instead of ``subscriber``."""
        return await self._call(ctxt, "subscription_create", queue=queue,
                                subscriber=subscriber, ttl=ttl, options=options,
                                send_confirmation=send_confirmation, connection=connection)

    async def subscription_list(self, ctxt: RequestContext, queue: str, marker: str | None,
                                limit: int) -> dict[str, Any]:
        """``{"subscriptions": [Subscription], "marker": str | None}``, creation
        order, ids > marker, expired ones never listed."""
        return await self._call(ctxt, "subscription_list", queue=queue, marker=marker,
                                limit=limit)

    async def subscription_get(self, ctxt: RequestContext, queue: str,
                               subscription_id: str) -> dict[str, Any]:
        """One Subscription with its ``delivery`` statistics; raises
        SubscriptionDoesNotExist."""
        return await self._call(ctxt, "subscription_get", queue=queue,
                                subscription_id=subscription_id)

    async def subscription_update(self, ctxt: RequestContext, queue: str,
                                  subscription_id: str, changes: dict[str, Any]) -> None:
        """Apply any of ``subscriber``, ``ttl`` (restarts expiry), ``options``
        (replaced whole); raises SubscriptionDoesNotExist or Conflict."""
        return await self._call(ctxt, "subscription_update", queue=queue,
                                subscription_id=subscription_id, changes=changes)

    async def subscription_delete(self, ctxt: RequestContext, queue: str,
                                  subscription_id: str) -> None:
        """Delete it with its pending deliveries (no-op if missing)."""
        return await self._call(ctxt, "subscription_delete", queue=queue,
                                subscription_id=subscription_id)

    async def subscription_confirm(self, ctxt: RequestContext, queue: str,
                                   subscription_id: str, confirmed: bool) -> None:
        """Set ``confirmed`` (id looked up in the project only); un-confirming
        queues an UnsubscribeConfirmation when enabled. Raises
        SubscriptionDoesNotExist."""
        return await self._call(ctxt, "subscription_confirm", queue=queue,
                                subscription_id=subscription_id, confirmed=confirmed)

    async def subscription_test(self, ctxt: RequestContext, queue: str,
                                subscription_id: str) -> dict[str, Any]:
        """(1.3) Send one test notification to the subscriber through the
        delivery transports, once, recorded like any attempt (history and
        health). ``{"delivered": bool, "status": int | None, "error": str |
        None, "latency_ms": float, "attempted_at": ISO 8601, "payload": {...}}``.
        Raises SubscriptionDoesNotExist."""
        return await self._call(ctxt, "subscription_test", queue=queue,
                                subscription_id=subscription_id)

    async def subscription_delete_connection(self, ctxt: RequestContext, gateway_id: str,
                                             connection_id: str) -> int:
        """Delete the subscriptions of a closed websocket connection; their count."""
        return await self._call(ctxt, "subscription_delete_connection",
                                gateway_id=gateway_id, connection_id=connection_id)

    # -- pools and flavors (1.4) --------------------------------------------

    async def pool_list(self, ctxt: RequestContext, marker: str | None, limit: int,
                        detailed: bool) -> list[dict[str, Any]]:
        """``[{"name", "uri", "weight", "flavor"[, "options"]}]`` sorted by name.

        Pools are global (every pool is listed); ``flavor`` is the caller's
        project's flavor using the pool, else None: flavors are per project."""
        return await self._call(ctxt, "pool_list", marker=marker, limit=limit,
                                detailed=detailed)

    async def pool_get(self, ctxt: RequestContext, name: str,
                       detailed: bool) -> dict[str, Any]:
        """One pool (as listed); raises NotFound."""
        return await self._call(ctxt, "pool_get", name=name, detailed=detailed)

    async def pool_put(self, ctxt: RequestContext, name: str, uri: str, weight: int,
                       flavor: str | None, options: dict[str, Any]) -> None:
        """Create or overwrite; the database at ``uri`` is migrated (BadRequest
        ``cannot connect to <uri>`` when that fails); Conflict when another
        pool has the URI."""
        return await self._call(ctxt, "pool_put", name=name, uri=uri, weight=weight,
                                flavor=flavor, options=options)

    async def pool_update(self, ctxt: RequestContext, name: str,
                          changes: dict[str, Any]) -> dict[str, Any]:
        """Apply any of uri/weight/flavor/options; the pool after it (detailed)."""
        return await self._call(ctxt, "pool_update", name=name, changes=changes)

    async def pool_delete(self, ctxt: RequestContext, name: str) -> None:
        """No-op if missing; Forbidden for the last pool of the caller's flavor,
        Conflict while the pool holds queues or another project's flavor uses it."""
        return await self._call(ctxt, "pool_delete", name=name)

    async def flavor_list(self, ctxt: RequestContext, marker: str | None, limit: int,
                          detailed: bool) -> list[dict[str, Any]]:
        """The project's flavors ``[{"name"[, "pool_list", "capabilities"]}]``."""
        return await self._call(ctxt, "flavor_list", marker=marker, limit=limit,
                                detailed=detailed)

    async def flavor_get(self, ctxt: RequestContext, name: str) -> dict[str, Any]:
        """``{"name", "pool_list", "capabilities"}``; raises NotFound."""
        return await self._call(ctxt, "flavor_get", name=name)

    async def flavor_put(self, ctxt: RequestContext, name: str, pool_list: list[str],
                         capabilities: dict[str, Any]) -> None:
        """Create or overwrite, assigning the pools (BadRequest for unknown ones)."""
        return await self._call(ctxt, "flavor_put", name=name, pool_list=pool_list,
                                capabilities=capabilities)

    async def flavor_update(self, ctxt: RequestContext, name: str,
                            pool_list: list[str]) -> dict[str, Any]:
        """Replace the pool list (pools left out are detached); the flavor after it."""
        return await self._call(ctxt, "flavor_update", name=name, pool_list=pool_list)

    async def flavor_delete(self, ctxt: RequestContext, name: str) -> None:
        """Delete it and detach its pools (no-op if missing)."""
        return await self._call(ctxt, "flavor_delete", name=name)

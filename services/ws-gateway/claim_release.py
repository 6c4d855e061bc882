"""Claims released when the websocket connection that holds them closes.

A ``claim_create`` or ``claim_update`` with ``"release_on_close": true``
registers the claim with its connection in storage (the gateway's member id
and the connection id go with the call); ``owner`` builds that registration
and notes the claim's (project, queue) on the connection. When the
connection closes for any reason the gateway sees (the client closed it,
the network dropped it, an idle or auth timeout, the gateway stopping),
``ClaimReleases.connection_closed`` calls ``claim_release_connection`` once
per noted queue, in that queue's project: the claims still registered with
this connection are released and their messages are claimable at once.

A killed gateway releases nothing itself: the storage workers release its
claims once it has left the tooz group ``herald.ws``
(``herald.storage.claim_connections``). This module neither validates
requests nor decides what a claim is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from herald.common.context import RequestContext, set_current_request_id

if TYPE_CHECKING:
    from herald.ws_gateway.connection import Connection
    from herald.ws_gateway.service import WSGatewayService

LOG = logging.getLogger(__name__)


def owner(connection: Any, project: str, queue: str) -> dict[str, str] | None:
    """The registration of a claim with ``connection`` (None without one:
    a dispatcher driven directly), noting the queue on the connection first
    so that a close racing the claim still releases it."""
    gateway = getattr(connection, "gateway", None)
    if gateway is None:
        return None
    queues: set[tuple[str, str]] | None = getattr(connection, "claim_queues", None)
    if queues is None:
        queues = connection.claim_queues = set()
    queues.add((project, queue))
    return {"gateway_id": gateway.member_id, "connection_id": connection.connection_id}


class ClaimReleases:
    """The gateway's releases of closed connections' claims (on its loop)."""

    def __init__(self, gateway: WSGatewayService) -> None:
        self._gateway = gateway
        self._tasks: set[asyncio.Task[Any]] = set()

    def connection_closed(self, connection: Connection) -> None:
        queues = getattr(connection, "claim_queues", None)
        if not queues:
            return
        task = asyncio.ensure_future(self._release(connection.connection_id, sorted(queues)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, connection_id: str, queues: list[tuple[str, str]]) -> None:
        storage = self._gateway.storage
        calls = []
        for project, queue in queues:
            ctxt = RequestContext(project_id=project)
            set_current_request_id(ctxt.request_id)
            calls.append(storage.claim_release_connection(
                ctxt, queue, self._gateway.member_id, connection_id))
        results = await asyncio.gather(*calls, return_exceptions=True)
        released = 0
        for (project, queue), result in zip(queues, results, strict=True):
            if isinstance(result, BaseException):
                # The workers release them once this gateway leaves herald.ws,
                # or they expire with their TTL.
                LOG.warning("ws connection %s closed: could not release its claims in %s/%s: "
                            "%s", connection_id, project, queue,
                            getattr(result, "description", result))
            else:
                released += int(result)
        if released:
            LOG.info("ws connection %s closed: %d claim(s) released", connection_id, released)

    async def wait(self, timeout: float) -> None:
        """Until the releases under way are done (at most ``timeout`` seconds)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

"""Claims registered with a websocket connection (``release_on_close``).

A claim created over a websocket with ``"release_on_close": true`` carries
the owning gateway's tooz member id and the connection's id
(``claims.gateway_id``, ``claims.connection_id``; NULL for every other
claim). Two things release such a claim before its TTL ends:

* the gateway, when the connection closes for any reason it sees
  (``release``, the operation ``claim_release_connection``: once per queue
  the connection registered claims in, in that queue's project, so a
  connection only ever releases its own project's claims);
* a storage worker, when the gateway itself has left the tooz group
  ``herald.ws`` (killed, its host lost): ``release_dead_gateways``, run by
  every worker's background thread on the queues it owns.

A claim renewed without the flag or released the ordinary way loses its
registration (``ClaimController.update`` / ``delete``); a claim whose
messages were all deleted has nothing left to release. Releasing is what
``claim_delete`` does: the messages are claimable at once, and the long
polls on the queue are woken after the commit.

Must not decide whether a gateway is alive (the worker passes tooz's answer
in) nor validate requests (the edges did).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from herald.storage import base, clock
from herald.storage.engine import Database
from herald.storage.schema import claims, messages

#: Column sizes of the registration (schema.claims).
_GATEWAY_LEN, _CONNECTION_LEN = 128, 64


def registration(connection: dict[str, Any] | None) -> dict[str, str | None]:
    """The claim columns for ``connection`` (``{"gateway_id", "connection_id"}``
    from the edge), both None without one: a claim without the flag, or a
    renewal that drops the registration."""
    if not connection:
        return {"gateway_id": None, "connection_id": None}
    gateway_id = str(connection.get("gateway_id") or "")[:_GATEWAY_LEN]
    connection_id = str(connection.get("connection_id") or "")[:_CONNECTION_LEN]
    if not gateway_id or not connection_id:
        return {"gateway_id": None, "connection_id": None}
    return {"gateway_id": gateway_id, "connection_id": connection_id}


class ClaimConnections:
    """Release of registered claims, on one database."""

    def __init__(self, db: Database, conf: cfg.ConfigOpts) -> None:
        self._db = db
        self._conf = conf

    def release(self, project: str, queue: str, gateway_id: str, connection_id: str) -> int:
        """Release the queue's claims registered with this connection; their count."""
        return self._release(project, queue, claims.c.gateway_id == gateway_id,
                             claims.c.connection_id == connection_id)

    def release_gateway(self, project: str, queue: str, gateway_id: str) -> int:
        """Release the queue's claims registered with any connection of a
        gateway that is gone; their count."""
        return self._release(project, queue, claims.c.gateway_id == gateway_id)

    def _release(self, project: str, queue: str, *owned_by: Any) -> int:
        with self._db.write() as conn:
            # Locked: a renewal that drops the registration either commits
            # first (then this no longer matches the row) or waits for this
            # release and then finds no claim (404), never both.
            ids = [row.id for row in conn.execute(
                sa.select(claims.c.id)
                .where(claims.c.project == project, claims.c.queue == queue, *owned_by)
                .with_for_update())]
            if not ids:
                return 0
            conn.execute(
                sa.update(messages)
                .where(base.in_queue(project, queue), messages.c.claim_id.in_(ids))
                .values(claim_id=None, claim_expires=None))
            conn.execute(sa.delete(claims).where(claims.c.project == project,
                                                 claims.c.queue == queue,
                                                 claims.c.id.in_(ids)))
        # After the commit: long polls on the queue may take the messages now.
        self._db.wiring.wakeups.messages_available(project, queue)
        return len(ids)

    def registered_gateways(self) -> set[str]:
        """The gateways that own at least one live registered claim (an index scan)."""
        now = clock.now()
        with self._db.read() as conn:
            return {row.gateway_id for row in conn.execute(
                sa.select(claims.c.gateway_id)
                .where(claims.c.gateway_id.is_not(None), claims.c.expires > now)
                .distinct())}

    def queues_of(self, gateway_ids: set[str]) -> list[tuple[str, str, str]]:
        """``(project, queue, gateway_id)`` holding claims of these gateways."""
        with self._db.read() as conn:
            return sorted((row.project, row.queue, row.gateway_id) for row in conn.execute(
                sa.select(claims.c.project, claims.c.queue, claims.c.gateway_id)
                .where(claims.c.gateway_id.in_(sorted(gateway_ids))).distinct()))

    def release_dead_gateways(self, live_gateways: Callable[[], set[str] | None],
                              owns: Callable[[str, str], bool]) -> int:
        """Release the claims of every gateway not in ``live_gateways()`` (the
        members of ``herald.ws``; None when tooz cannot tell, and then nothing
        is released), in the queues ``owns`` says are this worker's; the
        number of claims released.

        The members are listed after the claims are read: a gateway joins
        the group before it accepts a connection, so a claim that was read
        belongs to a gateway the listing includes unless that gateway left.
        """
        registered = self.registered_gateways()
        if not registered:
            return 0
        live = live_gateways()
        if live is None:
            return 0
        dead = registered - live
        if not dead:
            return 0
        return sum(self.release_gateway(project, queue, gateway_id)
                   for project, queue, gateway_id in self.queues_of(dead)
                   if owns(project, queue))

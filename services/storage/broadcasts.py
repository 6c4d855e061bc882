"""Websocket broadcasts: one push per gateway and post, sent once the post commits.

A websocket connection subscription lives as long as its connection
(docs/websocket-subscriptions.md), so its pushes need no durable outbox row:
the notifier stage (``herald.storage.notifier``) groups a post's websocket
subscribers by the gateway holding their connection and puts one
``Broadcast`` per gateway on the post (``PostedBatch.broadcasts``) --
the post's notification payloads once, and the ids of that gateway's
subscribed connections. Once the post commits, the poster hands them to
this process's ``BroadcastSender`` (``StorageWiring.broadcasts``), whose one
thread sends them in the order they were handed over, one push
(``WSPushClient.broadcast``) per broadcast: so the posts of one queue reach
a gateway in commit order, each post's messages in request order.

A gateway that left the ``herald.ws`` group is dead: its connections died
with it, so instead of a push its subscriptions are deleted from the post's
database. A push that the broker does not take, or that a gateway dies
while writing, is lost: a websocket subscriber gets at most once what was
committed while its connection lived (the documented promise).

Nothing here reads posts or knows frames; the gateway's side is
``herald.ws_gateway.push``. Thread-safety: ``send`` from any thread.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from herald.common import metrics, tracing
from herald.common.context import set_current_request_id

if TYPE_CHECKING:
    from oslo_config import cfg

    from herald.common.rpc.ws_push import WSPushClient
    from herald.storage.engine import Database

LOG = logging.getLogger(__name__)

#: ``herald_subscription_deliveries_total`` of websocket subscribers: a push
#: per connection and message, handed to its gateway (or its gateway is gone).
_DELIVERED = metrics.child(metrics.SUBSCRIPTION_DELIVERIES, "websocket", "delivered")
_GONE = metrics.child(metrics.SUBSCRIPTION_DELIVERIES, "websocket", "gone")


@dataclasses.dataclass
class Broadcast:
    """One post's notifications for the subscribed connections of one gateway."""

    gateway_id: str
    project: str
    queue: str
    #: The gateway's subscribed connections (one subscription each counts once).
    connections: list[str]
    #: notifications.md §3's payload of each message, in request order.
    payloads: list[dict[str, Any]]
    request_id: str = "-"
    traceparent: str = ""
    #: The post's database: where a dead gateway's subscriptions are deleted.
    db: Database | None = None


class BroadcastSender:
    """Sends the broadcasts of one storage process, in hand-over order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Broadcast | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pusher: WSPushClient | None = None
        self._gateway_alive: Callable[[str], bool | None] = lambda gateway_id: None
        self._conf: cfg.ConfigOpts | None = None

    def start(self, conf: cfg.ConfigOpts, pusher: WSPushClient,
              gateway_alive: Callable[[str], bool | None]) -> None:
        """Start sending (the worker, once its push client exists)."""
        if self._thread is not None:
            return
        self._conf, self._pusher, self._gateway_alive = conf, pusher, gateway_alive
        self._thread = threading.Thread(target=self._run, name="ws-broadcast", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what was handed over, then stop."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def send(self, broadcasts: list[Broadcast]) -> None:
        """Queue committed broadcasts (the poster's after-commit callback);
        without a running sender (a database used outside a worker) no
        gateway can hold a connection of this process's, so they are dropped."""
        if self._thread is None:
            LOG.debug("%d websocket broadcast(s) dropped: no sender running", len(broadcasts))
            return
        for broadcast in broadcasts:
            self._queue.put(broadcast)

    def _run(self) -> None:
        while True:
            broadcast = self._queue.get()
            if broadcast is None:
                return
            try:
                self._send(broadcast)
            except Exception:  # a lost push: the promise is at most once
                LOG.warning("websocket broadcast to gateway %s for %s/%s lost",
                            broadcast.gateway_id, broadcast.project, broadcast.queue,
                            exc_info=True)

    def _send(self, broadcast: Broadcast) -> None:
        assert self._pusher is not None
        set_current_request_id(broadcast.request_id or "-")
        pushes = len(broadcast.connections) * len(broadcast.payloads)
        if self._gateway_alive(broadcast.gateway_id) is False:
            if metrics.ENABLED:
                _GONE.inc(pushes)
            self._forget_gateway(broadcast)
            return
        span = None
        if tracing.active():
            span = tracing.start("send websocket", "client", broadcast.traceparent, {
                "messaging.system": "herald", "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": broadcast.queue,
                "messaging.batch.message_count": len(broadcast.payloads),
                "herald.ws.gateway": broadcast.gateway_id,
                "herald.ws.connections": len(broadcast.connections),
            }, links=[broadcast.traceparent])
        try:
            reached = self._pusher.broadcast(broadcast.gateway_id, broadcast.connections,
                                             broadcast.payloads, broadcast.request_id)
            if metrics.ENABLED:
                (_DELIVERED if reached else _GONE).inc(pushes)
        except Exception as exc:
            if span is not None:
                span.fail(str(exc))
            raise
        finally:
            if span is not None:
                span.end()

    def _forget_gateway(self, broadcast: Broadcast) -> None:
        """The gateway is dead, and so are its connections: their
        subscriptions go (all of that gateway's, not only this queue's)."""
        from herald.storage.subscriptions import SubscriptionController

        if broadcast.db is None or self._conf is None:
            return
        count = SubscriptionController(broadcast.db, self._conf).delete_connection(
            broadcast.gateway_id, None)
        LOG.info("websocket gateway %s is gone: %d subscription(s) of its connections removed",
                 broadcast.gateway_id, count)

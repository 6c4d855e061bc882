"""Pushes from the storage workers to websocket connections on the gateways.

A websocket subscriber lives on one gateway. A storage worker's dispatcher
reaches it through ``WSPushClient.push(gateway_id, connection_id, payload)``:

* when that gateway runs in the same process (embedded mode, tests), it is
  called directly through the ``LocalGateways`` the client was given (the
  worker and the gateways of one process share one, in a ``LocalBus``) --
  the payload still goes through the JSON serializer, as over RabbitMQ;
* otherwise the push is an oslo.messaging **cast** to topic ``[rpc]
  ws_topic`` with ``server=<gateway id>`` (each gateway listens under its
  tooz member id, ``herald.ws_gateway.push``), fire-and-forget: the
  gateway answers nothing, a lost push is a lost websocket frame, which is
  what a websocket subscriber gets anyway when its connection drops.
  ``push_many`` sends several pushes to one gateway as one ``push_batch``
  cast (push API 1.1), delivered in their order; a single push is the
  plain ``push`` cast every gateway version takes.

``broadcast(gateway_id, connection_ids, payloads)`` (push API 1.2) is how
websocket subscribers are notified (``herald.storage.broadcasts``): one
cast per post and gateway carries the post's notification payloads once
and the ids of that gateway's subscribed connections; the gateway writes
each payload to each connection, serializing it once per frame format.
Like a push it is fire-and-forget: nothing comes back.

Nothing here knows about connections or frames. Thread-safety:
``LocalGateways`` and ``WSPushClient`` may be used from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_config import cfg

from herald.common.context import RequestContext
from herald.common.rpc import ALLOWED_REMOTE_EXMODS, bus_auth
from herald.common.rpc.serializer import JsonSerializer, decode, encode

LOG = logging.getLogger(__name__)

#: What a gateway serves: 1.1 added ``push_batch``, 1.2 ``broadcast``. A
#: plain ``push`` is sent as 1.0, so a gateway of an earlier release still
#: takes it.
PUSH_API_VERSION = "1.2"

Handler = Callable[[str, Any], bool]
#: ``broadcaster(connection_ids, payloads)``: queue every payload for every
#: connection of the gateway; returns at once.
Broadcaster = Callable[[list[str], list[Any]], None]


class LocalGateways:
    """The gateways a worker can reach without the broker (same process):
    member id -> ``handler(connection_id, payload)``, returning False when
    the connection is unknown. A gateway registers while it runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self._broadcasters: dict[str, Broadcaster] = {}

    def register(self, gateway_id: str, handler: Handler,
                 broadcaster: Broadcaster | None = None) -> None:
        with self._lock:
            self._handlers[gateway_id] = handler
            if broadcaster is not None:
                self._broadcasters[gateway_id] = broadcaster

    def unregister(self, gateway_id: str) -> None:
        with self._lock:
            self._handlers.pop(gateway_id, None)
            self._broadcasters.pop(gateway_id, None)

    def broadcaster(self, gateway_id: str) -> Broadcaster | None:
        return self._broadcasters.get(gateway_id)

    def get(self, gateway_id: str) -> Handler | None:
        # A dict read is atomic: no lock on the push path.
        return self._handlers.get(gateway_id)

    def ids(self) -> set[str]:
        """The member ids of the gateways registered now."""
        with self._lock:
            return set(self._handlers)


class WSPushClient:
    """Blocking; call it from a worker thread, never from an event loop."""

    def __init__(self, conf: cfg.ConfigOpts, use_rpc: bool,
                 local: LocalGateways | None = None) -> None:
        self._conf = conf
        self._use_rpc = use_rpc
        self._local = local if local is not None else LocalGateways()
        self._client: Any = None
        self._transport: Any = None
        self._client_lock = threading.Lock()

    def _rpc_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._transport = oslo_messaging.get_rpc_transport(
                    self._conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)
                target = oslo_messaging.Target(topic=self._conf.rpc.ws_topic,
                                               version="1.0")
                self._client = bus_auth.SigningClient.from_conf(
                    oslo_messaging.get_rpc_client(
                        self._transport, target, serializer=JsonSerializer(),
                        retry=self._conf.rpc.call_retry),
                    self._conf)
            return self._client

    def is_local(self, gateway_id: str) -> bool:
        return self._local.get(gateway_id) is not None

    def local_gateways(self) -> set[str]:
        """The gateways of this process (alive while registered)."""
        return self._local.ids()

    def push(self, gateway_id: str, connection_id: str, payload: Any,
             request_id: str = "-") -> bool | None:
        """True: handed to the connection. False: that gateway has no such
        connection. None: cast to a remote gateway (outcome unknown).
        Raises when the broker cannot take the cast (the caller retries)."""
        handler = self._local.get(gateway_id)
        if handler is not None:
            # Same serialization as the cast, so embedded mode hides nothing.
            return bool(handler(connection_id, decode(json.loads(json.dumps(encode(payload))))))
        if not self._use_rpc:
            return False
        ctxt = RequestContext(project_id="", request_id=request_id)
        self._rpc_client().prepare(server=gateway_id).cast(
            ctxt, "push", connection_id=connection_id, payload=payload)
        return None

    def push_many(self, gateway_id: str, pushes: list[tuple[str, Any, str]]
                  ) -> list[bool | None]:
        """``push`` for several ``(connection_id, payload, request_id)`` bound
        for one gateway, in order: one cast to a remote gateway."""
        handler = self._local.get(gateway_id)
        if handler is not None or not self._use_rpc or len(pushes) == 1:
            return [self.push(gateway_id, connection_id, payload, request_id)
                    for connection_id, payload, request_id in pushes]
        ctxt = RequestContext(project_id="", request_id=pushes[0][2])
        self._rpc_client().prepare(server=gateway_id, version="1.1").cast(
            ctxt, "push_batch", pushes=[
                {"connection_id": connection_id, "payload": payload, "request_id": request_id}
                for connection_id, payload, request_id in pushes])
        return [None] * len(pushes)

    def broadcast(self, gateway_id: str, connection_ids: list[str], payloads: list[Any],
                  request_id: str = "-") -> bool:
        """Every payload, in order, to each of the gateway's connections
        (push API 1.2): False when it is not reachable (neither in this
        process nor over RPC). Raises when the broker cannot take the cast."""
        broadcaster = self._local.broadcaster(gateway_id)
        if broadcaster is not None:
            # Same serialization as the cast, so embedded mode hides nothing.
            broadcaster(connection_ids, decode(json.loads(json.dumps(encode(payloads)))))
            return True
        if not self._use_rpc:
            return False
        ctxt = RequestContext(project_id="", request_id=request_id)
        self._rpc_client().prepare(server=gateway_id, version="1.2").cast(
            ctxt, "broadcast", connection_ids=connection_ids, payloads=payloads)
        return True

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None
            self._client = None

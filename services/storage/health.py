"""Readiness of a storage worker: its database and its own RPC server answer.

``WorkerReadiness.check()`` (blocking; run by ``herald.common.health.BlockingProbe``)
raises ``NotReady`` unless

1. the worker has started and is not stopping,
2. its database answers a ``SELECT 1``, and
3. a ``ping`` call sent through the broker to this very worker (topic
   ``[rpc] topic``, ``server=<member id>``) comes back: that proves the broker
   connection, the consumer and the executor all work, which no TCP check of
   RabbitMQ would.

Only reports; it never restarts or reconnects anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_config import cfg

from herald.common.context import RequestContext
from herald.common.health import CHECK_TIMEOUT_SECONDS, NotReady
from herald.common.rpc import ALLOWED_REMOTE_EXMODS, STORAGE_API_VERSION, bus_auth
from herald.common.rpc.serializer import JsonSerializer


class WorkerReadiness:
    def __init__(self, conf: cfg.ConfigOpts, member_id: str, db_ping: Callable[[], bool],
                 serving: Callable[[], bool], serve_rpc: bool) -> None:
        self._conf = conf
        self._member_id = member_id
        self._db_ping = db_ping
        self._serving = serving
        self._serve_rpc = serve_rpc
        self._transport: Any = None
        self._client: Any = None

    def _rpc_client(self) -> Any:
        if self._client is None:
            self._transport = oslo_messaging.get_rpc_transport(
                self._conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS)
            target = oslo_messaging.Target(topic=self._conf.rpc.topic, server=self._member_id,
                                           version=STORAGE_API_VERSION)
            # retry=0: a probe must fail, not wait for the broker to come back.
            self._client = bus_auth.SigningClient.from_conf(oslo_messaging.get_rpc_client(
                self._transport, target, serializer=JsonSerializer(),
                timeout=CHECK_TIMEOUT_SECONDS * 2, retry=0), self._conf)
        return self._client

    def check(self) -> None:
        if not self._serving():
            raise NotReady("the storage worker is starting or stopping")
        try:
            reachable = self._db_ping()
        except Exception as exc:
            raise NotReady(f"database unreachable: {exc}") from exc
        if not reachable:
            raise NotReady("database unreachable")
        if not self._serve_rpc:
            return
        ctxt = RequestContext(project_id="", request_id="req-readyz")
        try:
            self._rpc_client().call(ctxt, "ping")
        except oslo_messaging.MessagingTimeout as exc:
            raise NotReady("this worker did not answer an RPC ping through the broker "
                           "in time") from exc
        except bus_auth.UnverifiedReply as exc:
            # Our own worker's answer did not authenticate: keys differ, or
            # something else answers on the bus.
            raise NotReady("this worker's RPC ping reply could not be authenticated "
                           "([rpc] bus_keys)") from exc
        except oslo_messaging.MessagingException as exc:
            raise NotReady(f"message broker unreachable: {exc}") from exc

    def close(self) -> None:
        if self._transport is not None:
            transport, self._transport, self._client = self._transport, None, None
            transport.cleanup()

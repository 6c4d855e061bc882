"""The worker-side oslo.messaging RPC server, with an explicit lifecycle.

A storage worker listens on the storage topic twice over: as one of the pool
(``topic`` only: calls are spread among workers by the broker) and under its
own ``server`` name (for calls aimed at one worker). Calls run on
oslo.messaging's threading executor (its only non-deprecated one), so
endpoint methods are plain blocking functions.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import oslo_messaging
from oslo_config import cfg

from herald.common.errors import HeraldError
from herald.common.rpc import ALLOWED_REMOTE_EXMODS
from herald.common.rpc.serializer import JsonSerializer

LOG = logging.getLogger(__name__)


class _TypedErrorsAreReplies:
    """Endpoint proxy: a ``HeraldError`` is an answer for the client, not a
    server failure. Re-raised as oslo.messaging's ``ExpectedException`` it is
    still sent back as the typed error, but without an ERROR log line and a
    traceback for every 404."""

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint
        self.target = getattr(endpoint, "target", None)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._endpoint, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except HeraldError:
                raise oslo_messaging.ExpectedException() from None

        return call


class RPCServer:
    def __init__(self, conf: cfg.ConfigOpts, topic: str, server_id: str,
                 endpoints: list[Any]) -> None:
        self._transport = oslo_messaging.get_rpc_transport(
            conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS
        )
        target = oslo_messaging.Target(topic=topic, server=server_id)
        self._server = oslo_messaging.get_rpc_server(
            self._transport,
            target,
            [_TypedErrorsAreReplies(endpoint) for endpoint in endpoints],
            serializer=JsonSerializer(),
        )
        self._topic = topic
        self._server_id = server_id

    def start(self) -> None:
        self._server.start()
        LOG.info("RPC server listening on topic %s as %s", self._topic, self._server_id)

    def stop(self) -> None:
        """Stop taking calls, let in-flight ones finish, release the broker."""
        self._server.stop()
        self._server.wait()
        self._transport.cleanup()

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
import threading
from typing import Any

import oslo_messaging
from oslo_config import cfg

from herald.common import errors, tracing
from herald.common.errors import HeraldError
from herald.common.rpc import ALLOWED_REMOTE_EXMODS, bus_auth, compat, nonce_store
from herald.common.rpc.serializer import JsonSerializer

LOG = logging.getLogger(__name__)


class _TypedErrorsAreReplies:
    """Endpoint proxy: a ``HeraldError`` is an answer for the client, not a
    server failure. Re-raised as oslo.messaging's ``ExpectedException`` it is
    still sent back as the typed error, but without an ERROR log line and a
    traceback for every 404.

    Every call and cast any Herald RPC server dispatches passes through here,
    so this is also where bus authentication is enforced (``bus_auth``): the
    signature argument is always removed before the endpoint sees the
    arguments, and with a ``verifier`` a message it does not vouch for is
    rejected as ``Forbidden`` before the endpoint runs.

    When a verified call asks for a signed reply (every Herald caller with
    keys does), every outcome -- the result, a typed error, an unexpected
    exception, a replay check that could not run -- is *returned* as a
    signed envelope bound to the request's nonce (``Verifier.reply``)
    instead of being raised: oslo.messaging's failure replies cannot carry a
    signature. A coalesced ``batch`` is one call like any other: its list of
    per-operation outcomes is signed as one result. A request that failed
    verification gets the plain ``Forbidden`` (nothing of it is trusted,
    not even its nonce)."""

    def __init__(self, endpoint: Any, verifier: bus_auth.Verifier | None = None,
                 service: str = "", topic: str = "") -> None:
        self._endpoint = endpoint
        self._verifier = verifier
        self._service = service or topic
        self._topic = topic
        self.target = getattr(endpoint, "target", None)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._endpoint, name)
        if name.startswith("_") or not callable(attr):
            return attr
        verifier = self._verifier
        # With tracing on, a SERVER span continuing the caller's trace
        # (after the signature check: an unverified call gets no span).
        attr = tracing.served(attr, self._service, name, self._topic)

        @functools.wraps(attr)
        def call(ctxt: Any, *args: Any, **kwargs: Any) -> Any:
            auth = kwargs.pop(bus_auth.AUTH_ARG, None)
            if verifier is None:
                try:
                    return attr(ctxt, *args, **kwargs)
                except HeraldError:
                    raise oslo_messaging.ExpectedException() from None
            reply_to: str | None = None
            try:
                try:
                    verifier.check(name, kwargs, ctxt, auth)
                except errors.Forbidden:
                    raise oslo_messaging.ExpectedException() from None
                except errors.ServiceUnavailable:
                    # The signature held; only the replay check could not run.
                    reply_to = bus_auth.reply_nonce(auth)
                    raise
                reply_to = bus_auth.reply_nonce(auth)
                result = attr(ctxt, *args, **kwargs)
            except HeraldError as exc:
                if reply_to is None:
                    raise oslo_messaging.ExpectedException() from None
                return verifier.reply(name, reply_to, error=exc)
            except oslo_messaging.ExpectedException:
                raise
            except Exception as exc:
                if reply_to is None:
                    raise
                # What oslo.messaging would have logged before its failure reply.
                LOG.exception("bus method %s failed", name)
                return verifier.reply(name, reply_to, error=exc)
            if reply_to is None:
                return result
            return verifier.reply(name, reply_to, result=result)

        return call


class RPCServer:
    def __init__(self, conf: cfg.ConfigOpts, topic: str, server_id: str,
                 endpoints: list[Any], shared_nonces: bool = True,
                 nonces: nonce_store.MemoryNonceStore | None = None,
                 service: str = "") -> None:
        """``shared_nonces=False`` for a server whose topic is cast to with
        ``fanout`` (every listener legitimately gets the same nonce): its
        replay check then uses a memory of its own (``nonce_store``).
        ``nonces``: the process's memory of nonces (``LocalBus.nonces``),
        used unless coordination is Redis. ``service``: the API's name in
        trace spans (default: the topic)."""
        self._transport = oslo_messaging.get_rpc_transport(
            conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS
        )
        target = oslo_messaging.Target(topic=topic, server=server_id)
        # One verifier (one nonce store) for all endpoints of this server.
        self._verifier = bus_auth.verifier_from_conf(conf, shared=shared_nonces, memory=nonces)
        self._server = oslo_messaging.get_rpc_server(
            self._transport,
            target,
            [_TypedErrorsAreReplies(endpoint, self._verifier, service, topic)
             for endpoint in endpoints],
            serializer=JsonSerializer(),
        )
        self._topic = topic
        self._server_id = server_id

    def start(self) -> None:
        self._server.start()
        compat.leave_late_deliveries_unacked(self._server)
        LOG.info("RPC server listening on topic %s as %s", self._topic, self._server_id)

    def stop(self) -> None:
        """Stop taking calls, let in-flight ones finish, release the broker."""
        self._server.stop()
        self._server.wait()
        self._transport.cleanup()
        if self._verifier is not None:
            self._verifier.close()

    def kill(self, cleanup_seconds: float = 1.0) -> None:
        """Stop taking calls without waiting for those in flight (their
        callers re-send them to another worker, or time out); give the
        broker connections ``cleanup_seconds`` to close."""
        self._server.stop()
        # cleanup() can wait for consumer threads busy with calls in flight.
        cleaner = threading.Thread(target=self._transport.cleanup, name="rpc-kill",
                                   daemon=True)
        cleaner.start()
        cleaner.join(cleanup_seconds)
        if self._verifier is not None:
            self._verifier.close()

"""How a storage RPC call crosses from an edge service to a storage worker.

Two callers implement ``Caller.call``:

- ``OsloCaller``: oslo.messaging over the configured ``transport_url``
  (RabbitMQ in production). oslo.messaging is blocking, so every call runs on
  a dedicated thread pool, always with an explicit ``timeout`` and a finite
  ``retry``: the default retries forever and would hang the service when the
  broker is down. Concurrent calls are coalesced into one ``batch`` call
  (``herald.common.rpc.coalescer``; ``[rpc] coalesce_max_batch`` and
  ``coalesce_max_delay``), which is where an edge's throughput comes from.
  Each operation gets an operation id, and a call no worker answers is sent
  again (``herald.common.rpc.resend``: a worker that died or stopped with
  it costs its client a fraction of a second, not ``call_timeout``).
- ``InProcessCaller``: the embedded mode's dispatcher. It invokes the storage
  endpoint in the same process, but still passes the context, the arguments,
  the reply and any error through the JSON serializer and ``json`` itself, so
  a payload that would not survive RabbitMQ fails here too. (Not oslo's
  ``fake://`` driver: it polls, ~50 ms per call, and passes objects by
  reference.)

Both translate failures into ``herald.common.errors`` types: typed storage
errors pass through, a timeout or unreachable broker becomes
``ServiceUnavailable`` (503), anything else ``InternalError`` (500). With
``[rpc] bus_keys``, ``OsloCaller``'s client (``bus_auth.SigningClient``)
signs every call and believes only a reply the worker signed for that very
call; any other reply raises ``bus_auth.UnverifiedReply``, a
``ServiceUnavailable``, and its content is never used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import threading
import uuid
from typing import Any, Protocol

import amqp.exceptions
import kombu.exceptions
import oslo_messaging
from oslo_config import cfg

from herald.common import errors, tracing
from herald.common.context import RequestContext
from herald.common.rpc import (
    ALLOWED_REMOTE_EXMODS,
    STORAGE_API_VERSION,
    STORAGE_TOPIC,
    bus_auth,
    operations,
)
from herald.common.rpc.coalescer import BATCH_METHOD, Coalescer, error_from_wire, error_to_wire
from herald.common.rpc.resend import Resender
from herald.common.rpc.serializer import JsonSerializer

LOG = logging.getLogger(__name__)


class Caller(Protocol):
    """Something that runs a storage RPC method and returns its decoded reply."""

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any: ...

    def stop(self) -> None: ...


# What kombu/amqp raise when the broker connection is refused or dropped
# while oslo.messaging sends with a finite ``retry``: not every path wraps
# them in a MessagingException. A broker outage is a 503, not a storage bug.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError, amqp.exceptions.ConnectionError, OSError)


# How long stop() waits for oslo.messaging to release the broker connections.
CLEANUP_SECONDS = 1.0


# Seconds a call may spend being published on top of [rpc] call_timeout.
PUBLISH_GRACE = 2.0


def _unavailable(what: str) -> errors.ServiceUnavailable:
    return errors.ServiceUnavailable(f"{what} Please try again in a few seconds.")


class OsloCaller:
    """Calls the storage workers over oslo.messaging, off the event loop."""

    def __init__(self, conf: cfg.ConfigOpts, transport: oslo_messaging.Transport | None = None):
        self._conf = conf
        self._transport = transport or oslo_messaging.get_rpc_transport(
            conf, allowed_remote_exmods=ALLOWED_REMOTE_EXMODS
        )
        target = oslo_messaging.Target(topic=conf.rpc.topic, version=STORAGE_API_VERSION)
        # Signs every call (plain and batch) when [rpc] bus_keys is set.
        self._client = bus_auth.SigningClient.from_conf(oslo_messaging.get_rpc_client(
            self._transport,
            target,
            serializer=JsonSerializer(),
            timeout=conf.rpc.call_timeout,
            retry=conf.rpc.call_retry,
        ), conf)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=conf.rpc.client_threads, thread_name_prefix="rpc-call"
        )
        self._coalescer = Coalescer(self._send_one, self._send_batch,
                                    max_batch=conf.rpc.coalesce_max_batch,
                                    max_delay=conf.rpc.coalesce_max_delay,
                                    max_inflight=conf.rpc.coalesce_max_inflight,
                                    deadline=conf.rpc.call_timeout + PUBLISH_GRACE)
        # oslo.messaging opens the reply queue's connection on the first call,
        # under a lock and retrying forever whatever ``retry`` says: with the
        # broker down, that call and every call queued behind the lock would
        # hang. One dedicated thread makes that first connection; until it
        # has, calls answer 503 at once instead of waiting.
        self._reply_queue_ready = threading.Event()
        self._stopping = threading.Event()
        self._resender = Resender(conf, conf.rpc.call_timeout + PUBLISH_GRACE)
        self._connector: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start connecting (a thread of its own); idempotent. The owning
        service calls it; ``call`` and ``wait_connected`` do too, for callers
        built before callers had a start()."""
        with self._start_lock:
            if self._connector is None and not self._stopping.is_set():
                self._connector = threading.Thread(
                    target=self._open_reply_queue, name="rpc-connect", daemon=True)
                self._connector.start()
                self._resender.start()

    def _open_reply_queue(self) -> None:
        ctxt = RequestContext(project_id="", request_id="req-rpc-connect")
        # A short timeout: the reply queue exists as soon as the call is sent;
        # waiting for a worker to answer is not the point.
        client = self._client.prepare(timeout=1.0)
        while not self._stopping.is_set():
            try:
                client.call(ctxt, "ping")
            except oslo_messaging.MessagingTimeout:
                pass  # broker reached, reply queue open; no worker answered yet
            except (oslo_messaging.MessagingException, *BROKER_ERRORS) as exc:
                LOG.warning("message broker not reachable yet: %s", exc)
                self._stopping.wait(1.0)
                continue
            except Exception as exc:  # a worker answered, even if with an error
                LOG.debug("first storage call answered with %r", exc)
            self._reply_queue_ready.set()
            LOG.info("connected to the message broker")
            return

    def _call_blocking(self, ctxt: RequestContext, method: str, kwargs: dict[str, Any]) -> Any:
        # Just after start-up the connector may need a moment; never longer
        # than a second or the call timeout, whichever is shorter.
        if not self._reply_queue_ready.wait(min(1.0, self._conf.rpc.call_timeout)):
            raise _unavailable("The message broker is unreachable.")
        try:
            return self._client.call(ctxt, method, **kwargs)
        except errors.HeraldError:
            raise
        except Exception as exc:
            if self._stopping.is_set():
                # The transport was cleaned up under this call (its client
                # was answered or given up on already): nothing to report.
                LOG.debug("storage call %s ended by the stop: %r", method, exc)
                raise _unavailable("The storage service is stopping.") from exc
            return self._failed(method, exc)

    def _failed(self, method: str, exc: Exception) -> Any:
        """Raise the Herald error of an oslo.messaging call's failure."""
        try:
            raise exc
        except oslo_messaging.MessagingTimeout as exc:
            LOG.warning("storage call %s timed out: %s", method, exc)
            raise _unavailable("The storage service did not answer in time.") from exc
        except oslo_messaging.RemoteError as exc:
            LOG.error("storage call %s failed remotely: %s", method, exc.value)
            raise errors.InternalError(exc.value or exc.exc_type) from exc
        except (oslo_messaging.MessagingException, *BROKER_ERRORS) as exc:
            LOG.warning("storage call %s could not be delivered: %s", method, exc)
            raise _unavailable("The message broker is unreachable.") from exc
        except Exception as exc:
            # Built-in exception types are rebuilt by oslo.messaging whatever
            # allowed_remote_exmods says; they are storage bugs, not client errors.
            LOG.error("storage call %s failed: %s", method, exc)
            detail = exc.args[0] if exc.args else ""
            raise errors.InternalError(f"{type(exc).__name__}: {detail}") from exc

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        if self._connector is None:
            self.start()
        # One id for every send of this operation (see resend).
        ctxt = dataclasses.replace(ctxt, operation_id=uuid.uuid4().hex)
        return await self._coalescer.call(ctxt, method, kwargs)

    def _submit(self, ctxt: RequestContext, method: str,
                kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        """One send of a call, on the pool's thread; its outcome."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._pool, self._call_blocking, ctxt, method, kwargs)
        # Retrieve a late outcome, so it is not reported as never retrieved.
        call.add_done_callback(lambda f: f.cancelled() or f.exception())
        return call

    async def _send_one(self, ctxt: RequestContext, method: str, kwargs: dict[str, Any]) -> Any:
        # oslo.messaging's timeout starts once the call is published; the
        # publish itself can block for seconds behind a connection that is
        # being re-established (seen with a broker that vanished silently,
        # tests/faults/test_broker.py). The resender answers the client in
        # bounded time anyway (call_timeout + PUBLISH_GRACE); a thread still
        # sending finishes (and its result is dropped) later.
        def send(attempt: int) -> asyncio.Future[Any]:
            again = ctxt if attempt == 1 else dataclasses.replace(ctxt, attempt=attempt)
            return self._submit(again, method, kwargs)

        return await self._resender.send(send, method in operations.RESENDABLE, method)

    async def _send_batch(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The call's own context only names the batch in the worker's log
        # lines; every operation carries its own (project, client, request
        # id, operation id, and which send this is).
        ctxt = RequestContext(project_id="", request_id=f"req-batch-{len(ops)}")
        if not tracing.active():
            return await self._send_ops(ctxt, ops)
        # A batch is no operation's child: its span links each operation's.
        with tracing.span(tracing.rpc_span_name(STORAGE_TOPIC, BATCH_METHOD), "client",
                          attributes=tracing.rpc_attributes(STORAGE_TOPIC, BATCH_METHOD,
                                                            len(ops)),
                          links=[op["context"].get("traceparent", "") for op in ops]) as span:
            if span is not None:
                ctxt = dataclasses.replace(ctxt, traceparent=span.traceparent)
            return await self._send_ops(ctxt, ops)

    async def _send_ops(self, ctxt: RequestContext, ops: list[dict[str, Any]]) -> Any:
        """The batch call of ``ops``, sent again (``resend``) if all of them may be."""
        def send(attempt: int) -> asyncio.Future[Any]:
            sent = ops if attempt == 1 else [
                {**op, "context": {**op["context"], "attempt": attempt}} for op in ops]
            return self._submit(ctxt, BATCH_METHOD, {"ops": sent})

        resendable = all(op["method"] in operations.RESENDABLE for op in ops)
        return await self._resender.send(send, resendable, BATCH_METHOD)

    def wait_connected(self, timeout: float) -> bool:
        """Block until the broker connection is up (for start-up and tests)."""
        self.start()
        return self._reply_queue_ready.wait(timeout)

    def abandon(self) -> None:
        """Answer the calls in flight, and every later one, with a 503 (the
        owning service's drain deadline); call on the event loop."""
        self._resender.abandon()

    def stop(self) -> None:
        self._stopping.set()
        self._resender.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Never connected: the connector thread holds oslo.messaging's
        # reply-queue lock while it retries, and cleanup() would wait for it
        # forever, so SIGTERM would never end the process. Nothing to release
        # then; the connector is a daemon thread.
        if self._reply_queue_ready.is_set():
            # cleanup() joins the reply waiter, whose blocking read only
            # notices the stop after its poll timeout (up to 5 s in
            # oslo.messaging): every SIGTERM'd edge took that long to exit.
            # Nothing waits for a reply any more, so give cleanup a second
            # and let the daemon threads go with the process.
            cleaner = threading.Thread(target=self._transport.cleanup,
                                       name="rpc-cleanup", daemon=True)
            cleaner.start()
            cleaner.join(CLEANUP_SECONDS)


class InProcessCaller:
    """The embedded mode's dispatcher: same process, same serialization."""

    def __init__(self, endpoint: Any, threads: int = 16) -> None:
        self._endpoint = endpoint
        self._serializer = JsonSerializer()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="rpc-inproc"
        )

    def _dispatch(self, wire_request: str) -> str:
        request = json.loads(wire_request)
        ctxt = self._serializer.deserialize_context(request["context"])
        kwargs = self._serializer.deserialize_entity(ctxt, request["args"])
        method = getattr(self._endpoint, request["method"], None)
        if method is None or request["method"].startswith("_"):
            reply = {"error": error_to_wire(
                errors.InternalError(f"Unknown storage method {request['method']}"))}
        else:
            try:
                result = tracing.served(method, STORAGE_TOPIC, request["method"])(
                    ctxt, **kwargs)
                reply = {"result": self._serializer.serialize_entity(ctxt, result)}
            except Exception as exc:  # every failure must cross like a reply
                if not isinstance(exc, errors.HeraldError):
                    LOG.exception("storage method %s failed", request["method"])
                reply = {"error": error_to_wire(exc)}
        return json.dumps(reply)

    async def call(self, ctxt: RequestContext, method: str, **kwargs: Any) -> Any:
        wire_request = json.dumps({
            "context": self._serializer.serialize_context(ctxt),
            "method": method,
            "args": self._serializer.serialize_entity(ctxt, kwargs),
        })
        loop = asyncio.get_running_loop()
        try:
            wire_reply = await loop.run_in_executor(self._pool, self._dispatch, wire_request)
        except RuntimeError as exc:  # pool shut down while stopping
            raise _unavailable("The storage service is stopping.") from exc
        reply = json.loads(wire_reply)
        if "error" in reply:
            raise error_from_wire(reply["error"])
        return self._serializer.deserialize_entity(ctxt, reply["result"])

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

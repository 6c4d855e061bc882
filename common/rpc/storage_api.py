"""The storage RPC API, version 1.7: the contract between edges and workers.

The api and ws-gateway services call these coroutines; the storage worker's
endpoint (``herald.storage.endpoint.StorageEndpoint``) implements a method of
the same name taking ``(ctxt, **kwargs)``. Both are generated from the table
of operations (``herald.common.rpc.operations``), which declares each
method's arguments, its documentation and its 503 sentence: read it there.
The project always comes from ``ctxt.project_id``. Arguments and replies are plain JSON values (see
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

1.5 claims released with their websocket connection (docs/api-extensions.md):
``claim_create`` and ``claim_update`` take an optional ``connection``
(``{"gateway_id", "connection_id"}``); ``claim_release_connection``.

1.6 dead-letter redrive (``queue_redrive``, ``queue_redrive_get``).

1.7 ``message_release``: one claimed message back to the queue, after a
delay (docs/release.md).

Failures: every ``ServiceUnavailable`` (broker down, timeout, a worker that
cannot reach its database) reaches the caller as ``ServiceUnavailable("<the
operation's sentence> Please try again in a few seconds.")``, the cause
chained as ``__cause__``: this proxy is the one place that wording is made.
Other errors pass through unchanged.

Thread-safety: a ``StorageAPI`` is used from one event loop; it holds no
state of its own beyond its caller.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from herald.common import errors, metrics, tracing
from herald.common.context import RequestContext
from herald.common.rpc import STORAGE_TOPIC, operations
from herald.common.rpc.caller import Caller
from herald.common.rpc.operations import Operation

Method = Callable[..., Coroutine[Any, Any, Any]]


def _signature(op: Operation) -> inspect.Signature:
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("ctxt", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=RequestContext)]
    params.extend(inspect.Parameter(arg.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=inspect.Parameter.empty if arg.required
                                    else arg.default)
                  for arg in op.args)
    return inspect.Signature(params)


async def _traced_call(caller: Caller, ctxt: RequestContext, method: str,
                       kwargs: dict[str, Any]) -> Any:
    """The call inside a CLIENT span (queueing in the coalescer included),
    whose traceparent the worker's span continues."""
    span = tracing.start(tracing.rpc_span_name(STORAGE_TOPIC, method), "client",
                         ctxt.traceparent, tracing.rpc_attributes(STORAGE_TOPIC, method))
    if span is None:
        return await caller.call(ctxt, method, **kwargs)
    try:
        return await caller.call(dataclasses.replace(ctxt, traceparent=span.traceparent),
                                 method, **kwargs)
    except Exception as exc:
        span.fail(exc)
        raise
    finally:
        span.end()


def _method(op: Operation) -> Method:
    """The coroutine method of ``op``: binds its arguments by name (precomputed
    here, once), calls the storage and words a 503 with ``op``'s sentence."""
    name = op.name
    names = tuple(arg.name for arg in op.args)
    known = frozenset(names)
    required = tuple(arg.name for arg in op.args if arg.required)
    # Filled in when missing (so the wire carries what it always did) ...
    defaults = tuple((arg.name, arg.default) for arg in op.args
                     if not arg.required and not arg.omit_none)
    # ... or left out when None (optional arguments of a later minor version).
    omitted = tuple(arg.name for arg in op.args if arg.omit_none)
    unavailable = op.unavailable_text
    # herald_rpc_call_duration_seconds{method=<op>}: bound at the operation's
    # first call (not at import: an operation never called has no series).
    duration: list[Any] = []

    async def call(self: StorageAPI, ctxt: RequestContext, *args: Any, **kwargs: Any) -> Any:
        if args:
            if len(args) > len(names) or any(arg in kwargs for arg in names[:len(args)]):
                raise TypeError(f"{name}() got too many or repeated arguments")
            kwargs.update(zip(names, args, strict=False))
        if not known.issuperset(kwargs):
            raise TypeError(f"{name}() got unexpected arguments {sorted(set(kwargs) - known)}")
        for arg in required:
            if arg not in kwargs:
                raise TypeError(f"{name}() missing required argument {arg!r}")
        for arg, default in defaults:
            if arg not in kwargs:
                kwargs[arg] = default
        for arg in omitted:
            if kwargs.get(arg, None) is None:
                kwargs.pop(arg, None)
        started = time.perf_counter() if metrics.ENABLED else 0.0
        try:
            if ctxt.traceparent:  # tracing on (herald.common.tracing)
                return await _traced_call(self._caller, ctxt, name, kwargs)
            return await self._caller.call(ctxt, name, **kwargs)
        except errors.ServiceUnavailable as exc:
            raise errors.ServiceUnavailable(unavailable) from exc
        finally:
            if started:
                if not duration:
                    duration.append(metrics.child(metrics.RPC_DURATION, name))
                duration[0].observe(time.perf_counter() - started)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{op.doc}\n\n503: {op.unavailable_text!r}"
    call.__signature__ = _signature(op)  # type: ignore[attr-defined]
    return call


class StorageAPI:
    """Client-side proxy of the storage RPC API: one coroutine per operation
    of ``herald.common.rpc.operations.OPERATIONS`` (added below the class),
    each ``(ctxt, <the operation's arguments>)``."""

    #: The operations this proxy offers, by name.
    operations = operations.BY_NAME

    def __init__(self, caller: Caller) -> None:
        self._caller = caller


def with_operations(cls: type[StorageAPI], table: Iterable[Operation]) -> type[StorageAPI]:
    """``cls`` with one method per operation of ``table`` (for a table other
    than the real one, pass a subclass: the methods are set on ``cls``)."""
    by_name = operations.index(table)
    for op in by_name.values():
        setattr(cls, op.name, _method(op))
    cls.operations = by_name
    return cls


with_operations(StorageAPI, operations.OPERATIONS)

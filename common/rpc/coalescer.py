"""Coalescing of concurrent storage calls into one ``batch`` RPC (ARCHITECTURE decision 2).

One blocking oslo.messaging call costs milliseconds of client time, so an
edge that made one RPC per request would top out at a few hundred requests
per second. ``Coalescer.call`` queues the operation instead; the queue is
flushed as one ``batch`` call (StorageAPI 1.2) when it holds ``max_batch``
operations or ``max_delay`` seconds after its first one arrived, whichever
comes first. A flush of a single operation is sent as the plain method call
(no batch envelope, nothing to unpack).

The delay is only paid while a batch is in flight (Nagle's rule): when the
edge has nothing outstanding, waiting cannot merge the operation with one
being answered, so the queue is flushed at the next turn of the event loop,
which still batches everything submitted in the current turn. Without this
a lone request (one client, or a quiet edge) paid ``max_delay`` plus the
timer's granularity on every call for nothing; under load there is always
a batch in flight and the delay does its job.

At most ``max_inflight`` batches are in flight at once (group commit):
while that many wait for their replies, new operations only queue, and the
queue is flushed as soon as one of them is answered. A fixed delay alone
does not batch: at a few hundred operations per second a 1 ms window
holds one operation, so every operation paid a whole RPC round trip of
CPU on the edge, the broker and the worker. Bounding the batches in flight
makes the batch size follow the load instead (32 concurrent clients and 2
batches in flight give batches of ~16), at the price of waiting for at most
one round trip. A queue that reaches ``max_batch`` is sent regardless.

Guarantees:

* every operation keeps its own outcome: the worker answers one
  ``{"result": ...}`` or ``{"error": {module, class, args}}`` per operation,
  and typed errors are rebuilt here as the same ``herald.common.errors``
  class, exactly as a plain call would raise them;
* a failure of the batch call itself (timeout, broker down) fails each
  operation of that batch with that same error, and nothing else;
* operations are sent in submission order, and the worker executes a
  batch in that order (see ``StorageEndpoint.batch``); a client awaiting
  each operation before the next is therefore never reordered;
* each operation carries its own ``RequestContext`` (project, client id,
  request id, roles): the batch call's own context only names the batch;
* with a ``deadline``, an operation is answered within it, from the moment
  it was submitted: one still unanswered then fails with
  ``ServiceUnavailable``, and one still queued is never sent. Without it, an
  operation queued behind ``max_inflight`` batches that hang (a broker gone
  silent) waited for their timeout and then for its own;
* an operation whose caller has gone (cancelled) before it was sent is
  never sent.

Must not block the event loop (sending is the ``send_*`` callables' job,
which run the blocking call on a thread) and must not know oslo.messaging.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from herald.common import errors, metrics
from herald.common.context import RequestContext
from herald.common.rpc import ALLOWED_REMOTE_EXMODS, operations

# herald_rpc_batch_size: operations per message the coalescer sends.
_BATCH_SIZE = metrics.RPC_BATCH_SIZE.observe

LOG = logging.getLogger(__name__)

#: The StorageAPI method a batch is sent as.
BATCH_METHOD = "batch"
#: Never coalesced: the operations the table declares ``Coalescing.NEVER``
#: (health checks measure the path itself), and ``batch``, which must not nest.
UNCOALESCED = operations.UNCOALESCED | {BATCH_METHOD}


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """An exception as plain JSON (class path and args), for a reply."""
    cls = type(exc)
    return {"module": cls.__module__, "class": cls.__name__, "args": list(exc.args)}


def error_from_wire(data: dict[str, Any]) -> BaseException:
    """Undo ``error_to_wire``: only ``herald.common.errors`` types are rebuilt
    (like ``allowed_remote_exmods``); anything else is an InternalError."""
    if data.get("module") in ALLOWED_REMOTE_EXMODS:
        cls = getattr(importlib.import_module(data["module"]), data.get("class", ""), None)
        if isinstance(cls, type) and issubclass(cls, errors.HeraldError):
            return cls(*data.get("args", []))
    detail = " ".join(str(arg) for arg in data.get("args", []))
    return errors.InternalError(f"{data.get('class', 'Error')}: {detail}" if detail
                                else str(data.get("class", "Error")))


def op_to_wire(ctxt: RequestContext, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One operation of a batch as the worker receives it."""
    return {"context": ctxt.to_dict(), "method": method, "args": kwargs}


@dataclasses.dataclass
class _Op:
    ctxt: RequestContext
    method: str
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]


SendOne = Callable[[RequestContext, str, dict[str, Any]], Awaitable[Any]]
SendBatch = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class Coalescer:
    """Queues operations on the running event loop and flushes them in batches."""

    def __init__(self, send_one: SendOne, send_batch: SendBatch, max_batch: int = 64,
                 max_delay: float = 0.001, uncoalesced: Iterable[str] = UNCOALESCED,
                 max_inflight: int = 0, deadline: float = 0.0) -> None:
        self._send_one = send_one
        self._send_batch = send_batch
        self._max_batch = max(1, max_batch)
        self._max_delay = max(0.0, max_delay)
        #: Batches in flight at most before new operations wait (0: no bound).
        self._max_inflight = max(0, max_inflight)
        #: Seconds an operation may wait for its answer in all (0: no bound).
        self._deadline = max(0.0, deadline)
        self._uncoalesced = frozenset(uncoalesced)
        self._pending: list[_Op] = []
        self._timer: asyncio.Handle | None = None
        # Strong references: the loop keeps only weak ones to tasks.
        self._sending: set[asyncio.Task[None]] = set()
        #: Batches sent and operations they carried (for tests and logs).
        self.batches_sent = 0
        self.ops_batched = 0

    @property
    def enabled(self) -> bool:
        return self._max_batch > 1

    async def call(self, ctxt: RequestContext, method: str, kwargs: dict[str, Any]) -> Any:
        if not self.enabled or method in self._uncoalesced:
            return await self._send_one(ctxt, method, kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Op(ctxt, method, kwargs, future))
        if len(self._pending) >= self._max_batch:
            self.flush()
        elif self._timer is None and not self._saturated():
            if self._sending:
                self._timer = loop.call_later(self._max_delay, self.flush)
            else:  # idle: nothing to wait for (see the module docstring)
                self._timer = loop.call_soon(self.flush)
        if not self._deadline:
            return await future
        try:
            # On timeout the future is cancelled: flush() skips it if it
            # is still queued, _settle() if its batch answers late.
            return await asyncio.wait_for(future, self._deadline)
        except TimeoutError:
            LOG.warning("storage call %s not answered within %.1f s", method, self._deadline)
            raise errors.ServiceUnavailable("The storage service did not answer in time. "
                                            "Please try again in a few seconds.") from None

    def _saturated(self) -> bool:
        """As many batches in flight as allowed: queue until one is answered."""
        return 0 < self._max_inflight <= len(self._sending)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        # A slot is free: what queued behind the bound goes now, together.
        if self._pending and self._timer is None and not self._saturated():
            self._timer = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Send what is queued now (called by the timer, on size, or by tests)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ops = [op for op in self._pending if not op.future.done()]  # not the gone
        self._pending = []
        if not ops:
            return
        task = asyncio.get_running_loop().create_task(self._send(ops))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    async def _send(self, ops: list[_Op]) -> None:
        if metrics.ENABLED:
            _BATCH_SIZE(len(ops))
        if len(ops) == 1:
            op = ops[0]
            try:
                result = await self._send_one(op.ctxt, op.method, op.kwargs)
            except BaseException as exc:  # handed to the awaiting caller
                _settle(op.future, exc=exc)
            else:
                _settle(op.future, result=result)
            return
        self.batches_sent += 1
        self.ops_batched += len(ops)
        try:
            replies = await self._send_batch(
                [op_to_wire(op.ctxt, op.method, op.kwargs) for op in ops])
            if not isinstance(replies, list) or len(replies) != len(ops):
                raise errors.InternalError(
                    f"storage batch answered {replies!r:.100} for {len(ops)} operations")
        except BaseException as exc:  # the batch's fate is each op's
            for op in ops:
                _settle(op.future, exc=exc)
            return
        for op, reply in zip(ops, replies, strict=True):
            if isinstance(reply, dict) and "error" in reply:
                _settle(op.future, exc=error_from_wire(reply["error"]))
            elif isinstance(reply, dict) and "result" in reply:
                _settle(op.future, result=reply["result"])
            else:
                _settle(op.future, exc=errors.InternalError(f"malformed batch reply {reply!r}"))

    async def drain(self) -> None:
        """Flush and wait for every batch in flight (for stopping and tests)."""
        self.flush()
        if self._sending:
            await asyncio.wait(set(self._sending))


def _settle(future: asyncio.Future[Any], result: Any = None,
            exc: BaseException | None = None) -> None:
    # The caller may have gone (request cancelled): nothing to tell it.
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

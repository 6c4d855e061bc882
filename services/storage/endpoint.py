"""The storage RPC endpoint: StorageAPI (``herald.common.rpc.storage_api``) on a worker.

One public method per operation of the table (``herald.common.rpc.operations``),
``(self, ctxt, **kwargs)``, generated at import, served by oslo.messaging's
threading executor or the embedded in-process dispatcher. The project always
comes from ``ctxt.project_id``. This layer only adapts: each method fills in
the declared defaults, passes the declared context attributes, and runs the
operation's ``target`` through the pool router (``herald.storage.pools``)
on the database its ``route`` names, inside ``operation_guard.guarded``
(request id, deadlock retries, 503 with the table's sentence, audit line of
a write). Operations whose arguments need adapting first (``endpoint.<name>``
targets) have a private adapter ``_<name>(op, ctxt, **kwargs)`` here.
Operations whose second run would answer differently (``operations.REPLAYED``)
record their reply under the call's operation id (``_replayed``), so an
edge's re-send answers the first send's reply.

``batch`` (1.2) runs an edge's coalesced operations through
``herald.storage.batch_runner.BatchRunner``.

Any attribute not starting with ``_`` is callable over RPC, so helpers must
stay private. Thread-safety: one endpoint serves every RPC thread; it holds
only references fixed at construction, and its router and controllers are
thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import oslo_messaging
from oslo_config import cfg
from sqlalchemy import exc as sa_exc

from herald.common import errors, ids
from herald.common.context import RequestContext
from herald.common.rpc import STORAGE_API_VERSION, operations
from herald.common.rpc.operations import Operation, Route
from herald.common.rpc.ws_push import WSPushClient
from herald.common.subscriptions import ws_subscriber_uri
from herald.storage import clock, history, idempotency, operation_status, pools, testfire
from herald.storage.batch_runner import BatchRunner
from herald.storage.claim_connections import ClaimConnections
from herald.storage.claims import ClaimController
from herald.storage.engine import Database, SharedTransactionFailed
from herald.storage.messages import MessageController
from herald.storage.operation_guard import guarded
from herald.storage.pool_catalog import PoolCatalog
from herald.storage.queues import QueueController
from herald.storage.redrive import RedriveController
from herald.storage.subscriptions import KIND_URI, KIND_WEBSOCKET, SubscriptionController

# Kept under its old name: tests and callers wrap operations with it.
_rpc = guarded

LOG = logging.getLogger(__name__)

#: The controllers an operation's ``target`` may name (``endpoint`` aside).
CONTROLLERS: Mapping[str, type] = {
    "queues": QueueController,
    "messages": MessageController,
    "claims": ClaimController,
    "claim_connections": ClaimConnections,
    "subscriptions": SubscriptionController,
    "catalog": PoolCatalog,
    "redrive": RedriveController,
}


class EndpointBase:
    """The endpoint without its operations: ``batch`` and the adapters
    (``endpoint_class`` adds one method per operation)."""

    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

    #: The operations this endpoint serves (set by ``endpoint_class``).
    _table: Mapping[str, Operation] = {}

    def __init__(self, db: Database, conf: cfg.ConfigOpts,
                 members: Callable[[], list[str]] | None = None,
                 pusher: WSPushClient | None = None,
                 gateway_alive: Callable[[str], bool | None] | None = None,
                 router: pools.Router | None = None) -> None:
        self._db = db
        self._conf = conf
        # For test-fired websocket subscriptions (the worker passes its own).
        self._pusher = pusher or WSPushClient(conf, use_rpc=False)
        self._gateway_alive = gateway_alive or (lambda gateway_id: None)
        self._members = members or (lambda: [])
        # With [DEFAULT] pooling, each call runs on the database its route
        # names (herald.storage.pools); otherwise on ``db``.
        self._pools = router or pools.Router(db, conf)
        # The main database's controllers now: a bad configuration (an
        # unknown pipeline stage) fails the worker's start, not a first call.
        for controller in CONTROLLERS.values():
            self._pools.controller(controller, self._pools.main)
        # The bound method of every operation, once: the batch runner's dispatch.
        self._batches = BatchRunner(db, self._pools, self._table,
                                    {name: getattr(self, name) for name in self._table})

    def batch(self, ctxt: RequestContext, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """(1.2) Run coalesced operations (``{"context", "method", "args"}``
        each) in order; one ``{"result": ...}`` or ``{"error": {...}}`` each."""
        return self._batches.batch(ctxt, ops)

    # -- adapters: operations whose arguments the controllers do not take as is

    def _ping(self, op: Operation, ctxt: RequestContext) -> bool:
        return self._db.ping()

    def _health(self, op: Operation, ctxt: RequestContext) -> dict[str, Any]:
        started = time.monotonic()
        reachable = self._db.ping()
        ping = {"succeeded": reachable, "seconds": time.monotonic() - started, "ref": None}
        # The volume before the probe, whose scratch messages are not the users'.
        volume = self._pools.run(op.route, QueueController, QueueController.volume,
                                 ctxt.project_id, {})
        main = self._pools.main
        status = operation_status.probe(
            main, self._pools.controller(QueueController, main),
            self._pools.controller(MessageController, main),
            self._pools.controller(ClaimController, main))
        # Zaqar's keys in Zaqar's order, then Herald's own (ping, workers).
        return {
            "storage_reachable": reachable,
            "operation_status": {**status, "ping": ping},
            "message_volume": volume,
            "workers": sorted(self._members()),
        }

    def _message_deliveries(self, op: Operation, ctxt: RequestContext, queue: str,
                            message_id: str) -> dict[str, Any]:
        return history.deliveries(self._pools.db_for(ctxt.project_id, queue), ctxt.project_id,
                                  queue, message_id)

    def _claim_create(self, op: Operation, ctxt: RequestContext, queue: str, ttl: int,
                      grace: int, limit: int, connection: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        """The claim's id is the call's operation id when it has one (an
        edge's ``RequestContext``): a re-send of the call (``attempt`` > 1,
        its first send unanswered) finds the claim the first send made, if
        that committed, and answers it instead of claiming other messages;
        the claims' primary key lets only one of two concurrent sends commit."""
        claim_id = ctxt.operation_id if ids.is_valid_id(ctxt.operation_id) else None
        args = {"queue": queue, "ttl": ttl, "grace": grace, "limit": limit,
                "client_id": ctxt.client_id, "connection": connection, "claim_id": claim_id}
        if claim_id is None or ctxt.attempt == 1:
            return self._pools.run(op.route, ClaimController, ClaimController.create,
                                   ctxt.project_id, args)
        made = self._claim_made(op, ctxt, queue, claim_id)
        if made is not None:
            return made
        try:
            return self._pools.run(op.route, ClaimController, ClaimController.create,
                                   ctxt.project_id, args)
        except sa_exc.IntegrityError:
            # The first send committed meanwhile: its claim.
            return self._claim_made(op, ctxt, queue, claim_id) or {"claim_id": None,
                                                                   "messages": []}

    def _claim_made(self, op: Operation, ctxt: RequestContext, queue: str,
                    claim_id: str) -> dict[str, Any] | None:
        """The claim an earlier send of a claim_create made, as it answered."""
        try:
            claim = self._pools.run(op.route, ClaimController, ClaimController.get,
                                    ctxt.project_id, {"queue": queue, "claim_id": claim_id})
        except errors.ClaimDoesNotExist:
            return None
        return {"claim_id": claim_id, "messages": claim["messages"]}

    def _replayed(self, op: Operation, ctxt: RequestContext, queue: str,
                  run: Callable[[], Any]) -> Any:
        """Run a ``REPLAYED`` operation and record its reply under the call's
        operation id, in the transaction of its effect (the writes of ``run``
        join it: ``Database.shared_write``). A re-send (``attempt`` > 1) whose
        first send committed answers that send's reply. Of two sends running
        at once only one can record (the key's primary key): the other rolls
        back with its effect and answers the winner's reply, whichever came first."""
        # Where the queue's rows are (queue_create: the main database, where
        # it is placed; the one database without pooling).
        db = (self._pools.main if op.route is Route.QUEUE_CREATE
              else self._pools.db_for(ctxt.project_id, queue))
        project, operation_id = ctxt.project_id, ctxt.operation_id
        if ctxt.attempt > 1:
            recorded = self._reply_of(db, project, queue, operation_id)
            if recorded is not None:
                return recorded[0]
        if not op.writes:
            # subscription_test: its effect, a notification, is no
            # transaction's; two sends at once may both notify (a test).
            reply = run()
            try:
                with db.write() as conn:
                    idempotency.remember_reply(conn, project, queue, operation_id, reply,
                                               clock.now())
            except sa_exc.IntegrityError:
                pass  # the other send's reply is as good
            return reply
        for last in (False, True):
            try:
                # One transaction, no savepoints: whatever fails rolls it all back.
                with db.shared_write(savepoints=False) as shared:
                    reply = run()
                    if shared.failed:  # a write failed and its error was handled
                        raise SharedTransactionFailed("a write of this operation failed")
                    with db.write() as conn:
                        idempotency.remember_reply(conn, project, queue, operation_id, reply,
                                                   clock.now())
                return reply
            except Exception as exc:
                # Another send recorded first (a first send late behind its
                # re-send fails on the re-send's effect, or on the key): its
                # reply. A concurrent write that won a unique index: once more.
                recorded = self._reply_of(db, project, queue, operation_id)
                if recorded is not None:
                    return recorded[0]
                if last or not isinstance(exc, sa_exc.IntegrityError | SharedTransactionFailed):
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _reply_of(db: Database, project: str, queue: str,
                  operation_id: str) -> tuple[Any] | None:
        with db.read() as conn:
            return idempotency.recorded_reply(conn, project, queue, operation_id, clock.now())

    def _subscription_create(self, op: Operation, ctxt: RequestContext, queue: str,
                             subscriber: str | None, ttl: int | None,
                             options: dict[str, Any] | None, send_confirmation: bool,
                             connection: dict[str, str] | None) -> dict[str, Any]:
        kind = KIND_URI
        if connection is not None:
            # A websocket connection subscriber: the URI is ours to make.
            subscriber = ws_subscriber_uri(connection["gateway_id"],
                                           connection["connection_id"])
            kind = KIND_WEBSOCKET
            send_confirmation = False
        if not subscriber:
            raise errors.BadRequest("Missing parameter subscriber in body.")
        return self._pools.run(op.route, SubscriptionController, SubscriptionController.create,
                               ctxt.project_id, {
                                   "queue": queue, "subscriber": subscriber, "ttl": ttl,
                                   "options": options, "kind": kind,
                                   "send_confirmation": send_confirmation,
                                   "request_id": ctxt.request_id})

    def _subscription_test(self, op: Operation, ctxt: RequestContext, queue: str,
                           subscription_id: str) -> dict[str, Any]:
        return testfire.fire(self._pools.db_for(ctxt.project_id, queue), self._conf,
                             self._pusher, self._gateway_alive,
                             ctxt.project_id, queue, subscription_id, ctxt.request_id)


def _operation_method(cls: type[EndpointBase], op: Operation) -> Callable[..., Any]:
    """The RPC method of ``op``; everything it needs is looked up here, once."""
    defaults = tuple((arg.name, arg.default) for arg in op.args if not arg.required)
    renames = tuple((arg.name, arg.param) for arg in op.args if arg.param)
    context = op.context
    route = op.route

    if op.controller == "endpoint":
        adapter = getattr(cls, f"_{op.method}")

        def run(self: EndpointBase, ctxt: RequestContext, **kwargs: Any) -> Any:
            for name, default in defaults:
                if name not in kwargs:
                    kwargs[name] = default
            return adapter(self, op, ctxt, **kwargs)
    else:
        controller = CONTROLLERS[op.controller]
        target = getattr(controller, op.method)

        def run(self: EndpointBase, ctxt: RequestContext, **kwargs: Any) -> Any:
            for name, default in defaults:
                if name not in kwargs:
                    kwargs[name] = default
            for name, param in renames:
                if name in kwargs:
                    kwargs[param] = kwargs.pop(name)
            for attr in context:
                kwargs[attr] = getattr(ctxt, attr)
            return self._pools.run(route, controller, target, ctxt.project_id, kwargs)

    if op.name in operations.REPLAYED:
        inner = run

        def replay(self: EndpointBase, ctxt: RequestContext, **kwargs: Any) -> Any:
            if not ctxt.operation_id:  # not an edge's call: no re-send to answer
                return inner(self, ctxt, **kwargs)
            return self._replayed(op, ctxt, kwargs["queue"],
                                  lambda: inner(self, ctxt, **kwargs))

        run = replay
    run.__name__ = run.__qualname__ = op.name
    run.__doc__ = op.doc
    return guarded(op.unavailable, audit=op.writes)(run)


def endpoint_class(table: Iterable[Operation],
                   base: type[EndpointBase] = EndpointBase) -> type[EndpointBase]:
    """A ``base`` subclass serving ``table`` (the real table: ``StorageEndpoint``)."""
    by_name = operations.index(table)
    namespace: dict[str, Any] = {"_table": by_name}
    cls = type("StorageEndpoint", (base,), namespace)
    for op in by_name.values():
        setattr(cls, op.name, _operation_method(cls, op))
    return cls


#: The endpoint every worker serves: the table's operations on ``EndpointBase``.
StorageEndpoint = endpoint_class(operations.OPERATIONS)

"""The batch runner: how a worker executes a coalesced ``batch`` (StorageAPI 1.2).

An edge's coalescer (``herald.common.rpc.coalescer``) sends concurrent
operations as one call: ``[{"context", "method", "args"}, ...]``. The runner
answers one ``{"result": ...}`` or ``{"error": {...}}`` per operation, in
order. Contract:

* operations run in submission order, each through the endpoint's own
  method (own context, retries, typed errors) and with its own outcome;
* consecutive operations whose coalescing class is a shared-transaction
  write (``operations.SHARED_TRANSACTION``: posts, deletes, claim create and
  update) share one transaction, ordered by queue (so two workers lock
  queues in the same order and cannot deadlock), first without savepoints
  and, if one of them failed, once more with a SAVEPOINT per group, so one
  failing operation never fails its neighbours and a batch of posts costs
  one commit;
* neighbouring plain posts (``SHARED_POST``) become one INSERT across their
  queues (``MessageController.post_to_queues``, pooling off) or one per
  queue (``post_many``); neighbouring deletes of one queue
  (``SHARED_DELETE``) one DELETE (``delete_each``); each keeps its outcome;
* a shared transaction that could not commit answers a 503 for everything
  but the client errors (4xx) it already had;
* an edge's re-send of an operation (``attempt`` > 1 in its context, see
  ``herald.common.rpc.resend``) runs alone, never merged nor shared: it
  looks for what its first send did, and a conflict with that send must
  fail it alone.

Which operation is which class is read from the table of operations, never
from method names. Thread-safety: one runner serves every RPC thread; a
batch's state lives in the call (its outcome list), and the runner holds
only references fixed at construction.

Must not decide routing (``herald.storage.pools.Router`` does) nor word a
503 (``operation_guard`` does, with the table's sentence).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from herald.common import errors, tracing
from herald.common.context import RequestContext, set_current_request_id
from herald.common.rpc import STORAGE_TOPIC
from herald.common.rpc.coalescer import error_from_wire, error_to_wire
from herald.common.rpc.operations import (
    BY_NAME,
    RETRY_HINT,
    SHARED_TRANSACTION,
    Coalescing,
    Operation,
)
from herald.storage import idempotency
from herald.storage.engine import Database, SharedTransactionFailed
from herald.storage.messages import MessageController
from herald.storage.operation_guard import guarded, log_done
from herald.storage.pools import Router
from herald.storage.post_rows import post_request

LOG = logging.getLogger(__name__)

# The operations the runner merges; their table entries give the 503
# sentence and the route of a merged group.
_POST = BY_NAME["message_post"]
_DELETE = BY_NAME["message_delete"]

#: An operation's endpoint method: ``(ctxt, **args)``.
OperationMethod = Callable[..., Any]


def _group_kind(op: dict[str, Any], table: Mapping[str, Operation]) -> Coalescing | None:
    """What a batch may merge ``op`` with, among its neighbours:
    ``SHARED_POST`` (one INSERT; not an idempotent post nor an edge's
    re-send of a post, which need their own key lookup and record),
    ``SHARED_DELETE`` (one DELETE), or None."""
    declared = table.get(op.get("method"))  # type: ignore[arg-type]
    kind = declared.coalescing if declared is not None else None
    if (kind is Coalescing.SHARED_POST and not (op.get("args") or {}).get("idempotency_key")
            and (op.get("context") or {}).get("attempt", 1) == 1):
        return kind
    if kind is Coalescing.SHARED_DELETE:
        return kind
    return None


def _shares(op: dict[str, Any], shared: frozenset[str]) -> bool:
    """Whether ``op`` may share its neighbours' transaction: not an edge's
    re-send, which must find what its first send did and fail alone."""
    return op.get("method") in shared and (op.get("context") or {}).get("attempt", 1) == 1


def _post_of(op: dict[str, Any], ctxt: RequestContext) -> dict[str, Any]:
    """A ``message_post`` operation as ``MessageController.post_many`` takes it."""
    args = op.get("args") or {}
    return post_request(args.get("messages") or [], args.get("body_size", 0),
                        ctxt.client_id, ctxt.request_id, ctxt.traceparent,
                        idempotency.operation_key(ctxt.operation_id))


def _queue_key(op: dict[str, Any]) -> tuple[str, str]:
    """(project, queue) of a batch's operation."""
    return (str((op.get("context") or {}).get("project_id", "")),
            str((op.get("args") or {}).get("queue", "")))


def _answer_uncommitted(outcomes: list[dict[str, Any] | None], order: list[int]) -> None:
    """The outcomes of a shared transaction that did not commit: a client's
    error (4xx) stands, as it would on any run; everything else -- a result
    that was rolled back, an operation never reached, a failure that may
    have been this transaction's -- is a 503 to try again."""
    unavailable = {"error": error_to_wire(errors.ServiceUnavailable(
        f"The storage could not commit. {RETRY_HINT}"))}
    for i in order:
        error = (outcomes[i] or {}).get("error")
        refused = error_from_wire(error) if error is not None else None
        if not (isinstance(refused, errors.HeraldError) and refused.status < 500):
            outcomes[i] = unavailable


def _split_by(indices: list[int], key: Callable[[int], Any]) -> list[list[int]]:
    """``indices`` cut into runs of equal ``key`` (they come sorted by it)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and key(runs[-1][0]) == key(i):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _operation_spans(ops: list[dict[str, Any]], batch: str
                     ) -> tuple[list[dict[str, Any]], list[tracing.Span | None]]:
    """A SERVER span per operation, continuing the trace of the request it
    came from and linked to the batch's span; the operations carry their
    span's traceparent from here on (a post's outbox rows keep it). The
    operations of a batch run together, so each span lasts the batch."""
    spans = []
    traced = []
    for op in ops:
        context = op.get("context") or {}
        method = str(op.get("method"))
        span = tracing.start(tracing.rpc_span_name(STORAGE_TOPIC, method), "server",
                             str(context.get("traceparent") or ""),
                             tracing.rpc_attributes(STORAGE_TOPIC, method), links=[batch])
        spans.append(span)
        traced.append(op if span is None else
                      {**op, "context": {**context, "traceparent": span.traceparent}})
    return traced, spans


def _end_operation_spans(spans: list[tracing.Span | None],
                         answers: list[dict[str, Any]]) -> None:
    for span, answer in zip(spans, answers, strict=True):
        if span is None:
            continue
        if "error" in answer:
            span.fail(error_from_wire(answer["error"]))
        span.end()


class BatchRunner:
    """Runs the operations of one ``batch`` call (see the module docstring)."""

    def __init__(self, db: Database, router: Router, table: Mapping[str, Operation],
                 methods: Mapping[str, OperationMethod]) -> None:
        self._db = db
        self._router = router
        self._table = table
        #: The endpoint's method of every operation (``batch`` is not one).
        self._methods = methods
        self._shared = frozenset(name for name, op in table.items()
                                 if op.coalescing in SHARED_TRANSACTION)

    def batch(self, ctxt: RequestContext, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run coalesced operations (``{"context", "method", "args"}`` each) in
        order; one ``{"result": ...}`` or ``{"error": {...}}`` per operation."""
        set_current_request_id(getattr(ctxt, "request_id", "-") or "-")
        if getattr(ctxt, "traceparent", ""):  # tracing on: a span per operation
            ops, spans = _operation_spans(ops, ctxt.traceparent)
            answers = self._batch(ops)
            _end_operation_spans(spans, answers)
            return answers
        return self._batch(ops)

    def _batch(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shared = self._shared
        outcomes: list[dict[str, Any] | None] = [None] * len(ops)
        index = 0
        while index < len(ops):
            end = index + 1
            if _shares(ops[index], shared):
                while end < len(ops) and _shares(ops[end], shared):
                    end += 1
            if end - index > 1:
                self._run_shared(ops, list(range(index, end)), outcomes)
            else:
                outcomes[index] = self._run_op(ops[index])
            index = end
        return [outcome or {"error": error_to_wire(errors.InternalError("not run"))}
                for outcome in outcomes]

    def _run_shared(self, ops: list[dict[str, Any]], indices: list[int],
                    outcomes: list[dict[str, Any] | None]) -> None:
        # Stable sort: one client's operations on one queue keep their order;
        # operations on different queues were concurrent anyway.
        order = sorted(indices, key=lambda i: _queue_key(ops[i]))
        # First without a SAVEPOINT per group: a SAVEPOINT and its RELEASE
        # are two round trips per group (15 % of a worker's time in a
        # claim + delete run), and almost every batch fails nowhere. If one
        # operation failed, its partial writes cannot be undone alone:
        # everything rolls back and the batch runs again, each group in a
        # savepoint of its own, so the failure is again that operation's only.
        # Not with pooling: an operation on a pool's database commits there
        # on its own, and running the batch again would repeat it.
        for savepoints in (True,) if self._router.enabled else (False, True):
            try:
                with self._db.shared_write(savepoints=savepoints) as shared:
                    self._run_groups(ops, order, outcomes)
                    if shared.failed:  # roll it all back, as a later write would
                        raise SharedTransactionFailed("a write of this batch failed")
                return
            except SharedTransactionFailed:
                LOG.debug("an operation of a shared transaction failed; running its "
                          "%d operations again, each group in a savepoint", len(order))
                for i in order:
                    outcomes[i] = None
            except Exception as exc:  # begin, commit or rollback failed: nothing was stored
                LOG.warning("shared transaction of %d operations failed: %s", len(order), exc)
                _answer_uncommitted(outcomes, order)
                return

    def _run_groups(self, ops: list[dict[str, Any]], order: list[int],
                    outcomes: list[dict[str, Any] | None]) -> None:
        """Run the operations of one shared transaction, ``order`` sorted by queue."""
        position = 0
        while position < len(order):
            # Neighbouring posts (after the sort) become one INSERT, across
            # their queues; neighbouring deletes in one queue one DELETE;
            # everything else runs on its own. Running a run of neighbours
            # together keeps each queue's order.
            first = ops[order[position]]
            kind = _group_kind(first, self._table)
            run = [order[position]]
            while position + len(run) < len(order) and kind is not None:
                following = ops[order[position + len(run)]]
                if (_group_kind(following, self._table) is not kind
                        or (kind is Coalescing.SHARED_DELETE
                            and _queue_key(following) != _queue_key(first))):
                    break
                run.append(order[position + len(run)])
            # The last run's writes end the transaction: a post's INSERT may
            # carry the COMMIT (Database.execute_last).
            last = position + len(run) == len(order)
            with self._db.final_writes() if last else contextlib.nullcontext():
                if kind is Coalescing.SHARED_POST and len(run) > 1:
                    self._run_posts(ops, _split_by(run, lambda i: _queue_key(ops[i])),
                                    outcomes)
                elif kind is Coalescing.SHARED_DELETE and len(run) > 1:
                    self._run_delete_group(ops, run, outcomes)
                else:
                    outcomes[run[0]] = self._run_op(ops[run[0]])
            position += len(run)

    def _run_posts(self, ops: list[dict[str, Any]], groups: list[list[int]],
                   outcomes: list[dict[str, Any] | None]) -> None:
        """Neighbouring posts of a batch, one group per queue: all queues in
        one statement set (``post_to_queues``) when they exist; else, or if
        that fails, one group after the other, each failing alone. With
        pools the queues may live in different databases: one group at a
        time then."""
        if not self._router.enabled:
            try:
                per_group = self._message_post_queues(ops, groups)
            except SharedTransactionFailed:
                raise
            except Exception as exc:  # logged by guarded; the groups' own path decides
                LOG.info("posts to %d queues in one statement set failed (%s); one queue "
                         "at a time", len(groups), exc)
                per_group = None
            if per_group is not None:
                for group, results in zip(groups, per_group, strict=True):
                    self._run_group(ops, group, outcomes, lambda *_, r=results: r,
                                    "message_post", "posts in one insert")
                return
        for number, group in enumerate(groups, start=1):
            # In the batch's last run, only the last group's write may carry
            # the COMMIT (Database.execute_last): a group after it would
            # find the transaction committed.
            with (self._db.final_writes(False) if number < len(groups)
                  else contextlib.nullcontext()):
                if len(group) > 1:
                    self._run_post_group(ops, group, outcomes)
                else:
                    outcomes[group[0]] = self._run_op(ops[group[0]])

    def _message_post_queues(self, ops: list[dict[str, Any]],
                             groups: list[list[int]]) -> list[list[Any]] | None:
        contexts = {i: RequestContext.from_dict(ops[i].get("context") or {})
                    for group in groups for i in group}
        return self._post_to_queues(contexts[groups[0][0]], groups=[
            (contexts[group[0]].project_id, str((ops[group[0]].get("args") or {}).get(
                "queue", "")), [_post_of(ops[i], contexts[i]) for i in group])
            for group in groups])

    @guarded(_POST.unavailable, audit=True)
    def _post_to_queues(self, ctxt: RequestContext,
                        groups: list[tuple[str, str, list[dict[str, Any]]]]) -> Any:
        # Not routed through pools: only used when pooling is off (_run_posts).
        return self._router.controller(MessageController, self._db).post_to_queues(groups)

    def _run_post_group(self, ops: list[dict[str, Any]], group: list[int],
                        outcomes: list[dict[str, Any] | None]) -> None:
        """Posts of one batch to one queue: one INSERT (``post_many``), each
        post keeping its own outcome; one SAVEPOINT for the group."""
        def run(contexts: list[RequestContext], queue: str,
                args: list[dict[str, Any]]) -> list[Any]:
            posts = [_post_of(ops[i], ctxt) for i, ctxt in zip(group, contexts, strict=True)]
            return self._message_post_group(contexts[0], queue=queue, posts=posts)

        self._run_group(ops, group, outcomes, run, "message_post", "posts in one insert")

    def _run_group(self, ops: list[dict[str, Any]], group: list[int],
                   outcomes: list[dict[str, Any] | None],
                   run: Callable[[list[RequestContext], str, list[dict[str, Any]]], list[Any]],
                   method: str, how: str) -> None:
        """Run a merged group of operations on one queue; each gets its own
        outcome from ``run``'s list (a HeraldError or its result) and the
        audit line a lone operation gets (see ``guarded``), with its request id."""
        contexts = [RequestContext.from_dict(ops[i].get("context") or {}) for i in group]
        args = [ops[i].get("args") or {} for i in group]
        queue = str(args[0].get("queue", ""))
        try:
            results = run(contexts, queue, args)
        except SharedTransactionFailed:
            raise  # not an outcome: the whole batch runs again (_run_shared)
        except Exception as exc:  # the group's statement failed: every operation did
            for i in group:
                outcomes[i] = {"error": error_to_wire(exc)}
            return
        for i, ctxt, result in zip(group, contexts, results, strict=True):
            if isinstance(result, errors.HeraldError):
                outcomes[i] = {"error": error_to_wire(result)}
            else:
                outcomes[i] = {"result": result}
                log_done(self._db, ctxt, "%s %s/%s done (%d %s)", method, ctxt.project_id,
                          queue or "-", len(group), how)

    @guarded(_POST.unavailable, audit=True)
    def _message_post_group(self, ctxt: RequestContext, queue: str,
                            posts: list[dict[str, Any]]) -> list[Any]:
        return self._router.run(_POST.route, MessageController, MessageController.post_many,
                                ctxt.project_id, {"queue": queue, "posts": posts})

    def _run_delete_group(self, ops: list[dict[str, Any]], group: list[int],
                          outcomes: list[dict[str, Any] | None]) -> None:
        """Deletes of one batch in one queue: one statement for the plain cases
        (``MessageController.delete_each``), each keeping its own outcome."""
        def run(contexts: list[RequestContext], queue: str,
                args: list[dict[str, Any]]) -> list[Any]:
            return self._message_delete_group(
                contexts[0], queue=queue,
                deletes=[(str(a.get("message_id", "")), a.get("claim_id")) for a in args])

        self._run_group(ops, group, outcomes, run, "message_delete", "deletes in one statement")

    @guarded(_DELETE.unavailable, audit=True)
    def _message_delete_group(self, ctxt: RequestContext, queue: str,
                              deletes: list[tuple[str, str | None]]) -> list[Any]:
        return self._router.run(_DELETE.route, MessageController, MessageController.delete_each,
                                ctxt.project_id, {"queue": queue, "deletes": deletes})

    def _run_op(self, op: dict[str, Any]) -> dict[str, Any]:
        name = op.get("method")
        method = self._methods.get(name) if isinstance(name, str) else None
        if method is None:
            return {"error": error_to_wire(errors.InternalError(f"Unknown storage method {name}"))}
        try:
            ctxt = RequestContext.from_dict(op.get("context") or {})
            return {"result": method(ctxt, **(op.get("args") or {}))}
        except errors.HeraldError as exc:
            return {"error": error_to_wire(exc)}
        except SharedTransactionFailed:
            raise  # not an outcome: the whole batch runs again (_run_shared)
        except Exception as exc:  # a storage bug: logged by guarded, answered as a 500
            return {"error": error_to_wire(exc)}

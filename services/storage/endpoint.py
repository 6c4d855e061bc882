"""The storage RPC endpoint: StorageAPI 1.2 (``herald.common.rpc.storage_api``).

One public method per StorageAPI method, ``(self, ctxt, **kwargs)``, served
by oslo.messaging's threading executor or the embedded in-process
dispatcher. The project always comes from ``ctxt.project_id``. This layer
only adapts: it sets the request id for log lines, delegates to the
controllers, retries a transaction the database aborted to break a deadlock
or a lock timeout, and turns an unreachable database into ServiceUnavailable
(typed ``herald.common.errors`` pass through unchanged). Any attribute not
starting with ``_`` is callable over RPC, so helpers must stay private.

``batch`` (1.2) runs the operations an edge coalesced into one call, in
submission order, each through its own method (own context, retries and
typed errors) and with its own outcome. Consecutive writes that touch single
queues (``_SHARED_TRANSACTION``) share one transaction, each in a SAVEPOINT,
so a batch of posts costs one commit, and one failing operation never fails
its neighbours. Posts of one batch to one queue go further: one INSERT for
all of them (``MessageController.post_many``), each keeping its own outcome.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import oslo_messaging
import tenacity
from oslo_config import cfg
from sqlalchemy import exc as sa_exc

from herald.common import errors
from herald.common.context import RequestContext, set_current_request_id
from herald.common.rpc import STORAGE_API_VERSION
from herald.common.rpc.coalescer import BATCH_METHOD, error_from_wire, error_to_wire
from herald.common.rpc.ws_push import WSPushClient
from herald.common.subscriptions import ws_subscriber_uri
from herald.storage import history, pools, testfire
from herald.storage.claims import ClaimController
from herald.storage.engine import Database, SharedTransactionFailed
from herald.storage.messages import MessageController
from herald.storage.post_rows import post_request
from herald.storage.queues import QueueController
from herald.storage.subscriptions import KIND_URI, KIND_WEBSOCKET, SubscriptionController

LOG = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Writes a batch may run in one shared transaction (one SAVEPOINT each).
# Each takes row locks only on its own queue's rows (the queue row for a
# post; SKIP LOCKED for claims), and a group runs them ordered by queue, so
# two groups on two workers lock queues in the same order and cannot
# deadlock each other. claim_delete and the bulk operations stay on their
# own transactions (they may fire post-commit wake-ups of their own).
_SHARED_TRANSACTION = frozenset({"message_post", "message_delete", "claim_create",
                                 "claim_update"})


def _group_kind(op: dict[str, Any]) -> str | None:
    """What a batch may merge ``op`` with, among its neighbours on one queue:
    ``"post"`` (one INSERT; not an idempotent post, which needs its own key
    lookup and record), ``"delete"`` (one DELETE), or None."""
    method = op.get("method")
    if method == "message_post" and not (op.get("args") or {}).get("idempotency_key"):
        return "post"
    if method == "message_delete":
        return "delete"
    return None


def _post_of(op: dict[str, Any], ctxt: RequestContext) -> dict[str, Any]:
    """A ``message_post`` operation as ``MessageController.post_many`` takes it."""
    args = op.get("args") or {}
    return post_request(args.get("messages") or [], args.get("body_size", 0),
                        ctxt.client_id, ctxt.request_id)


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
        "The storage could not commit. Please try again in a few seconds."))}
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


# Operations that change data get one INFO line each on the worker, with the
# request id (see herald.common.log): the trail an operator greps for. Reads
# stay silent: they are most of the traffic and change nothing.
_WRITES = ("create", "delete", "post", "purge", "update", "set_metadata", "pop", "confirm")

# PostgreSQL SQLSTATEs worth retrying the whole transaction for.
_RETRYABLE_PG = {"40001", "40P01", "55P03"}


def _is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_PG:
        return True
    return "database is locked" in str(orig or "")


def _log_done(db: Database, ctxt: RequestContext, msg: str, *args: Any) -> None:
    """A write's audit line, with its request id, once the write is committed.

    Inside a coalesced batch's shared transaction that is at its commit:
    lines written before it sat inside the queue locks a batch of posts
    holds (every other poster of those queues waited for them), and said
    "done" before the write was durable."""
    request_id = getattr(ctxt, "request_id", "-") or "-"

    def emit() -> None:
        set_current_request_id(request_id)
        LOG.info(msg, *args)

    db.after_commit(emit)


def _rpc(what: str) -> Callable[[F], F]:
    """Wrap an endpoint method; ``what`` names the operation in 503 messages."""

    def decorate(func: F) -> F:
        audit = any(word in func.__name__ for word in _WRITES)

        @functools.wraps(func)
        def wrapper(self: StorageEndpoint, ctxt: RequestContext, **kwargs: Any) -> Any:
            set_current_request_id(getattr(ctxt, "request_id", "-") or "-")
            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception(_is_retryable),
                stop=tenacity.stop_after_attempt(4),
                wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.2),
                reraise=True,
            )
            started = time.monotonic()
            try:
                result = retrying(func, self, ctxt, **kwargs)
            except (errors.HeraldError, SharedTransactionFailed):
                raise  # a client's error; a batch about to run again (batch)
            # PendingRollbackError: an earlier statement of the same (shared,
            # batched) transaction lost the connection; this operation never
            # ran and the whole transaction is rolled back -- unavailable, not a bug.
            except (sa_exc.OperationalError, sa_exc.InterfaceError,
                    sa_exc.PendingRollbackError) as exc:
                LOG.warning("storage operation %s failed: %s", func.__name__, exc)
                raise errors.ServiceUnavailable(
                    f"{what} Please try again in a few seconds.") from exc
            except Exception:
                LOG.exception("storage operation %s failed", func.__name__)
                raise
            if audit:
                _log_done(self._db, ctxt, "%s %s/%s done in %.1f ms", func.__name__,
                          ctxt.project_id, kwargs.get("queue", "-"),
                          1000.0 * (time.monotonic() - started))
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


class StorageEndpoint:
    target = oslo_messaging.Target(version=STORAGE_API_VERSION)

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
        # With [DEFAULT] pooling, each call runs on the database of its
        # queue's pool (herald.storage.pools); otherwise on ``db``.
        self._pools = router or pools.Router(db, conf)
        self._queues = self._pools.routed(QueueController)
        self._messages = self._pools.routed(MessageController)
        self._claims = self._pools.routed(ClaimController)
        self._subscriptions = self._pools.routed(SubscriptionController)

    # -- batches (1.2) ------------------------------------------------------

    def batch(self, ctxt: RequestContext, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run coalesced operations (``{"context", "method", "args"}`` each) in
        order; one ``{"result": ...}`` or ``{"error": {...}}`` per operation."""
        set_current_request_id(getattr(ctxt, "request_id", "-") or "-")
        outcomes: list[dict[str, Any] | None] = [None] * len(ops)
        index = 0
        while index < len(ops):
            end = index + 1
            if ops[index].get("method") in _SHARED_TRANSACTION:
                while end < len(ops) and ops[end].get("method") in _SHARED_TRANSACTION:
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
        for savepoints in (True,) if self._pools.enabled else (False, True):
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
            kind = _group_kind(first)
            run = [order[position]]
            while (kind is not None and position + len(run) < len(order)
                   and _group_kind(ops[order[position + len(run)]]) == kind
                   and (kind == "post" or _queue_key(ops[order[position + len(run)]])
                        == _queue_key(first))):
                run.append(order[position + len(run)])
            # The last run's writes end the transaction: a post's INSERT may
            # carry the COMMIT (Database.execute_last).
            last = position + len(run) == len(order)
            with self._db.final_writes() if last else contextlib.nullcontext():
                if kind == "post" and len(run) > 1:
                    self._run_posts(ops, _split_by(run, lambda i: _queue_key(ops[i])),
                                    outcomes)
                elif kind == "delete" and len(run) > 1:
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
        if not self._pools.enabled:
            try:
                per_group = self._message_post_queues(ops, groups)
            except SharedTransactionFailed:
                raise
            except Exception as exc:  # logged by _rpc; the groups' own path decides
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

    @_rpc("Messages could not be enqueued.")
    def _post_to_queues(self, ctxt: RequestContext,
                        groups: list[tuple[str, str, list[dict[str, Any]]]]) -> Any:
        # Not routed through pools: only used when pooling is off (_run_posts).
        return self._messages.post_to_queues(groups)

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
        audit line a lone operation gets (see ``_rpc``), with its request id."""
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
                _log_done(self._db, ctxt, "%s %s/%s done (%d %s)", method, ctxt.project_id,
                          queue or "-", len(group), how)

    @_rpc("Messages could not be enqueued.")
    def _message_post_group(self, ctxt: RequestContext, queue: str,
                            posts: list[dict[str, Any]]) -> list[Any]:
        return self._messages.post_many(ctxt.project_id, queue, posts)

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

    @_rpc("Messages could not be deleted.")
    def _message_delete_group(self, ctxt: RequestContext, queue: str,
                              deletes: list[tuple[str, str | None]]) -> list[Any]:
        return self._messages.delete_each(ctxt.project_id, queue, deletes)

    def _run_op(self, op: dict[str, Any]) -> dict[str, Any]:
        name = op.get("method")
        if (not isinstance(name, str) or name.startswith("_") or name == BATCH_METHOD
                or not callable(getattr(self, name, None))):
            return {"error": error_to_wire(errors.InternalError(f"Unknown storage method {name}"))}
        try:
            ctxt = RequestContext.from_dict(op.get("context") or {})
            return {"result": getattr(self, name)(ctxt, **(op.get("args") or {}))}
        except errors.HeraldError as exc:
            return {"error": error_to_wire(exc)}
        except SharedTransactionFailed:
            raise  # not an outcome: the whole batch runs again (_run_shared)
        except Exception as exc:  # a storage bug: logged by _rpc, answered as a 500
            return {"error": error_to_wire(exc)}

    # -- health -----------------------------------------------------------

    @_rpc("The storage is not reachable.")
    def ping(self, ctxt: RequestContext) -> bool:
        return self._db.ping()

    @_rpc("Health could not be checked.")
    def health(self, ctxt: RequestContext) -> dict[str, Any]:
        started = time.monotonic()
        reachable = self._db.ping()
        return {
            "storage_reachable": reachable,
            "workers": sorted(self._members()),
            "message_volume": self._queues.volume(),
            "operation_status": {
                "ping": {"succeeded": reachable,
                         "seconds": round(time.monotonic() - started, 4), "ref": None},
            },
        }

    # -- queues -----------------------------------------------------------

    @_rpc("Queue could not be created.")
    def queue_create(self, ctxt: RequestContext, queue: str,
                     metadata: dict[str, Any] | None = None) -> bool:
        return self._queues.create(ctxt.project_id, queue, metadata)

    @_rpc("Queue metadata could not be read.")
    def queue_get_metadata(self, ctxt: RequestContext, queue: str) -> dict[str, Any] | None:
        return self._queues.get_metadata(ctxt.project_id, queue)

    @_rpc("Queue metadata could not be updated.")
    def queue_set_metadata(self, ctxt: RequestContext, queue: str,
                           metadata: dict[str, Any]) -> None:
        self._queues.set_metadata(ctxt.project_id, queue, metadata)

    @_rpc("Queue could not be deleted.")
    def queue_delete(self, ctxt: RequestContext, queue: str) -> None:
        self._queues.delete(ctxt.project_id, queue)

    @_rpc("Queues could not be listed.")
    def queue_list(self, ctxt: RequestContext, marker: str | None = None, limit: int = 10,
                   detailed: bool = False, name: str | None = None,
                   metadata_filters: dict[str, Any] | None = None,
                   with_count: bool = False) -> dict[str, Any]:
        return self._queues.list(ctxt.project_id, marker, limit, detailed, name,
                                 metadata_filters, with_count)

    @_rpc("Queue stats could not be read.")
    def queue_stats(self, ctxt: RequestContext, queue: str) -> dict[str, Any]:
        return self._queues.stats(ctxt.project_id, queue)

    @_rpc("Queue could not be purged.")
    def queue_purge(self, ctxt: RequestContext, queue: str,
                    resource_types: list[str] | None = None) -> None:
        types = ["messages", "subscriptions"] if resource_types is None else resource_types
        self._queues.purge(ctxt.project_id, queue, types)

    # -- messages ---------------------------------------------------------

    @_rpc("Messages could not be enqueued.")
    def message_post(self, ctxt: RequestContext, queue: str, messages: list[dict[str, Any]],
                     body_size: int = 0, idempotency_key: str | None = None) -> list[str]:
        return self._messages.post(ctxt.project_id, queue, messages, body_size,
                                   ctxt.client_id, request_id=ctxt.request_id,
                                   idempotency_key=idempotency_key)

    @_rpc("Message deliveries could not be retrieved.")
    def message_deliveries(self, ctxt: RequestContext, queue: str,
                           message_id: str) -> dict[str, Any]:
        return history.deliveries(self._pools.db_for(ctxt.project_id, queue), ctxt.project_id,
                                  queue, message_id)

    @_rpc("Messages could not be listed.")
    def message_list(self, ctxt: RequestContext, queue: str, marker: str | None = None,
                     limit: int = 10, echo: bool = False, include_claimed: bool = False,
                     include_delayed: bool = False) -> dict[str, Any]:
        return self._messages.list(ctxt.project_id, queue, marker, limit, echo,
                                   include_claimed, include_delayed, ctxt.client_id)

    @_rpc("Message could not be retrieved.")
    def message_get(self, ctxt: RequestContext, queue: str, message_id: str) -> dict[str, Any]:
        return self._messages.get(ctxt.project_id, queue, message_id)

    @_rpc("Messages could not be retrieved.")
    def message_get_many(self, ctxt: RequestContext, queue: str,
                         message_ids: list[str]) -> list[dict[str, Any]]:
        return self._messages.get_many(ctxt.project_id, queue, message_ids)

    @_rpc("Unable to delete message.")
    def message_delete(self, ctxt: RequestContext, queue: str, message_id: str,
                       claim_id: str | None = None) -> None:
        self._messages.delete(ctxt.project_id, queue, message_id, claim_id)

    @_rpc("Messages could not be deleted.")
    def message_delete_many(self, ctxt: RequestContext, queue: str, message_ids: list[str],
                            claim_ids: list[str] | None = None) -> None:
        self._messages.delete_many(ctxt.project_id, queue, message_ids, claim_ids)

    @_rpc("Messages could not be popped.")
    def message_pop(self, ctxt: RequestContext, queue: str, limit: int) -> list[dict[str, Any]]:
        return self._messages.pop(ctxt.project_id, queue, limit)

    # -- claims -----------------------------------------------------------

    @_rpc("Claim could not be created.")
    def claim_create(self, ctxt: RequestContext, queue: str, ttl: int, grace: int,
                     limit: int = 10) -> dict[str, Any]:
        return self._claims.create(ctxt.project_id, queue, ttl, grace, limit,
                                   client_id=ctxt.client_id)

    @_rpc("Claim could not be queried.")
    def claim_get(self, ctxt: RequestContext, queue: str, claim_id: str) -> dict[str, Any]:
        return self._claims.get(ctxt.project_id, queue, claim_id)

    @_rpc("Claim could not be updated.")
    def claim_update(self, ctxt: RequestContext, queue: str, claim_id: str, ttl: int,
                     grace: int) -> None:
        self._claims.update(ctxt.project_id, queue, claim_id, ttl, grace)

    @_rpc("Claim could not be deleted.")
    def claim_delete(self, ctxt: RequestContext, queue: str, claim_id: str) -> None:
        self._claims.delete(ctxt.project_id, queue, claim_id)

    # -- subscriptions (1.1) -----------------------------------------------

    @_rpc("Subscription could not be created.")
    def subscription_create(self, ctxt: RequestContext, queue: str, subscriber: str | None,
                            ttl: int | None = None, options: dict[str, Any] | None = None,
                            send_confirmation: bool = False,
                            connection: dict[str, str] | None = None) -> dict[str, Any]:
        kind = KIND_URI
        if connection is not None:
            # A websocket connection subscriber: the URI is ours to make.
            subscriber = ws_subscriber_uri(connection["gateway_id"],
                                           connection["connection_id"])
            kind = KIND_WEBSOCKET
            send_confirmation = False
        if not subscriber:
            raise errors.BadRequest("Missing parameter subscriber in body.")
        return self._subscriptions.create(ctxt.project_id, queue, subscriber, ttl, options,
                                          kind, send_confirmation, ctxt.request_id)

    @_rpc("Subscriptions could not be listed.")
    def subscription_list(self, ctxt: RequestContext, queue: str, marker: str | None = None,
                          limit: int = 10) -> dict[str, Any]:
        return self._subscriptions.list(ctxt.project_id, queue, marker, limit)

    @_rpc("Subscription could not be retrieved.")
    def subscription_get(self, ctxt: RequestContext, queue: str,
                         subscription_id: str) -> dict[str, Any]:
        return self._subscriptions.get(ctxt.project_id, queue, subscription_id)

    @_rpc("Subscription could not be updated.")
    def subscription_update(self, ctxt: RequestContext, queue: str, subscription_id: str,
                            changes: dict[str, Any]) -> None:
        self._subscriptions.update(ctxt.project_id, queue, subscription_id, changes)

    @_rpc("Subscription could not be deleted.")
    def subscription_delete(self, ctxt: RequestContext, queue: str,
                            subscription_id: str) -> None:
        self._subscriptions.delete(ctxt.project_id, queue, subscription_id)

    @_rpc("Subscription could not be confirmed.")
    def subscription_confirm(self, ctxt: RequestContext, queue: str, subscription_id: str,
                             confirmed: bool) -> None:
        self._subscriptions.confirm(ctxt.project_id, queue, subscription_id, confirmed,
                                    ctxt.request_id)

    @_rpc("Subscription could not be tested.")
    def subscription_test(self, ctxt: RequestContext, queue: str,
                          subscription_id: str) -> dict[str, Any]:
        return testfire.fire(self._pools.db_for(ctxt.project_id, queue), self._conf,
                             self._pusher, self._gateway_alive,
                             ctxt.project_id, queue, subscription_id, ctxt.request_id)

    @_rpc("Subscriptions could not be deleted.")
    def subscription_delete_connection(self, ctxt: RequestContext, gateway_id: str,
                                       connection_id: str) -> int:
        return self._subscriptions.delete_connection(gateway_id, connection_id)

    # -- pools and flavors (1.4) -----------------------------------------------
    # Policy (admin role) is the edge's; these keep the catalog. Flavors and
    # which pools they have are per project: each call passes the caller's
    # project (herald.storage.pools says what is global and what is not).

    @_rpc("Pools could not be listed.")
    def pool_list(self, ctxt: RequestContext, marker: str | None = None, limit: int = 10,
                  detailed: bool = False) -> list[dict[str, Any]]:
        return self._pools.catalog.pool_list(ctxt.project_id, marker, limit, detailed)

    @_rpc("Pool could not be retrieved.")
    def pool_get(self, ctxt: RequestContext, name: str,
                 detailed: bool = False) -> dict[str, Any]:
        return self._pools.catalog.pool_get(ctxt.project_id, name, detailed)

    @_rpc("Pool could not be created.")
    def pool_put(self, ctxt: RequestContext, name: str, uri: str, weight: int,
                 flavor: str | None = None, options: dict[str, Any] | None = None) -> None:
        self._pools.catalog.pool_put(ctxt.project_id, name, uri, weight, flavor, options or {})

    @_rpc("Pool could not be updated.")
    def pool_update(self, ctxt: RequestContext, name: str,
                    changes: dict[str, Any]) -> dict[str, Any]:
        return self._pools.catalog.pool_update(ctxt.project_id, name, changes)

    @_rpc("Pool could not be deleted.")
    def pool_delete(self, ctxt: RequestContext, name: str) -> None:
        self._pools.catalog.pool_delete(ctxt.project_id, name)

    @_rpc("Flavors could not be listed.")
    def flavor_list(self, ctxt: RequestContext, marker: str | None = None, limit: int = 10,
                    detailed: bool = False) -> list[dict[str, Any]]:
        return self._pools.catalog.flavor_list(ctxt.project_id, marker, limit, detailed)

    @_rpc("Flavor could not be retrieved.")
    def flavor_get(self, ctxt: RequestContext, name: str) -> dict[str, Any]:
        return self._pools.catalog.flavor_get(ctxt.project_id, name)

    @_rpc("Flavor could not be created.")
    def flavor_put(self, ctxt: RequestContext, name: str, pool_list: list[str],
                   capabilities: dict[str, Any] | None = None) -> None:
        self._pools.catalog.flavor_put(ctxt.project_id, name, pool_list, capabilities or {})

    @_rpc("Flavor could not be updated.")
    def flavor_update(self, ctxt: RequestContext, name: str,
                      pool_list: list[str]) -> dict[str, Any]:
        return self._pools.catalog.flavor_update(ctxt.project_id, name, pool_list)

    @_rpc("Flavor could not be deleted.")
    def flavor_delete(self, ctxt: RequestContext, name: str) -> None:
        self._pools.catalog.flavor_delete(ctxt.project_id, name)

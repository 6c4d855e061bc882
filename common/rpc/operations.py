"""The table of storage operations: every StorageAPI method, declared once.

Each ``Operation`` says what the edge may call on the storage workers: its
name, its arguments (required or with a default), whether it writes, how a
worker with pools routes it (``Route``), the sentence a client reads when
the storage is unavailable, how the edge's coalescer and the worker's batch
runner treat it (``Coalescing``), and which controller method runs it. What
is generated from or read from this table:

* ``herald.common.rpc.storage_api.StorageAPI``: one coroutine per operation,
  with the signature and docstring declared here; it raises every
  ``ServiceUnavailable`` as ``"<unavailable> Please try again in a few
  seconds."`` (the one place that wording is made);
* ``herald.storage.endpoint.StorageEndpoint``: one RPC method per operation,
  which retries deadlocks, audits writes and calls ``target``;
* ``herald.storage.pools.Router``: runs the operation on the database its
  ``route`` names;
* ``herald.common.rpc.coalescer`` and ``herald.storage.batch_runner``: which
  operations are never batched, and which share a transaction or a statement.

Adding an operation is one entry here, one controller method and its tests
(an operation whose arguments need adapting before the controller sees them
targets ``endpoint.<name>``, a private adapter on the endpoint instead).
Adding an operation or an optional argument is a minor version bump of
``STORAGE_API_VERSION``; the edge must not call one workers may not have.

Everything derived from the table (``BY_NAME``, each operation's defaults)
is computed at import: nothing here inspects anything per call. The table
is immutable and safe to read from any thread.

Must not import the storage package (this module is shared by the edges):
``target`` names a controller method as a string the worker resolves once.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

#: The sentinel of an argument without a default.
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

#: What follows every 503 sentence (the Zaqar wording clients match on).
RETRY_HINT = "Please try again in a few seconds."


class Route(enum.Enum):
    """Where a worker runs an operation when ``[DEFAULT] pooling`` is on.

    Without pooling every operation runs on the main database."""

    QUEUE = "the database of the queue's pool (the main one if unplaced)"
    MAIN = "the main database only (health, the pool catalog)"
    EVERY = "every database, results merged (no project argument)"
    QUEUE_CREATE = "place the queue on a pool of its _flavor, then create it there"
    QUEUE_DELETE = ("delete on the queue's database, then forget its placement once "
                    "none of its subscriptions is left there")
    QUEUE_LIST = "list on every database and merge the pages by name"


class Coalescing(enum.Enum):
    """How an operation travels in a coalesced ``batch`` (StorageAPI 1.2)."""

    NEVER = "sent alone, never batched (it measures the path itself)"
    ALONE = "batched, run in its own transaction"
    SHARED = "batched; neighbouring shared writes share one transaction"
    SHARED_POST = "SHARED; neighbouring plain posts become one INSERT"
    SHARED_DELETE = "SHARED; neighbouring deletes in one queue become one DELETE"


#: The classes whose operations may share a transaction (batch_runner). Each
#: takes row locks only on its own queue's rows, and a shared transaction
#: runs them ordered by queue, so two workers cannot deadlock each other.
SHARED_TRANSACTION = frozenset({Coalescing.SHARED, Coalescing.SHARED_POST,
                                Coalescing.SHARED_DELETE})


@dataclasses.dataclass(frozen=True)
class Arg:
    """One argument of an operation, as sent over RPC."""

    name: str
    default: Any = REQUIRED
    #: Sent only when not None: an optional argument added in a minor version,
    #: which a worker of the previous one would refuse.
    omit_none: bool = False
    #: The controller's parameter name, when it differs from ``name``.
    param: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclasses.dataclass(frozen=True)
class Operation:
    """One storage operation (see the module docstring for who reads what)."""

    name: str
    args: tuple[Arg, ...]
    writes: bool
    route: Route
    #: The 503 sentence (the REST handler's), without the retry hint.
    unavailable: str
    coalescing: Coalescing
    #: ``"<controller>.<method>"``: controllers are ``queues``, ``messages``,
    #: ``claims``, ``claim_connections``, ``subscriptions``, ``catalog`` (the pool catalog) and
    #: ``endpoint`` (a private adapter ``StorageEndpoint._<name>``). The
    #: method is called with the project first (not for ``Route.EVERY``),
    #: then every argument by keyword (``param`` or ``name``).
    target: str
    #: ``RequestContext`` attributes also passed by keyword to the target.
    context: tuple[str, ...] = ()
    doc: str = ""

    @property
    def unavailable_text(self) -> str:
        """What a client reads in a 503 for this operation."""
        return f"{self.unavailable} {RETRY_HINT}"

    @property
    def defaults(self) -> dict[str, Any]:
        """The arguments with defaults (a new dict each time: callers may keep it)."""
        return {arg.name: arg.default for arg in self.args if not arg.required}

    @property
    def controller(self) -> str:
        return self.target.partition(".")[0]

    @property
    def method(self) -> str:
        return self.target.partition(".")[2]


def _a(name: str, default: Any = REQUIRED, **extra: Any) -> Arg:
    return Arg(name, default, **extra)


_Q = _a("queue")
_R, _W = False, True
_QUEUE, _MAIN, _EVERY = Route.QUEUE, Route.MAIN, Route.EVERY
_NEVER, _ALONE, _SHARED = Coalescing.NEVER, Coalescing.ALONE, Coalescing.SHARED

OPERATIONS: tuple[Operation, ...] = (
    # -- health (1.0) ------------------------------------------------------
    Operation("ping", (), _R, _MAIN, "The storage is not reachable.", _NEVER, "endpoint.ping",
              doc="True when the worker reaches its database (raises otherwise)."),
    Operation("health", (), _R, _EVERY, "Health status could not be read.", _NEVER,
              "endpoint.health",
              doc='Detailed health: ``{"storage_reachable": bool, "operation_status": '
                  '{<Zaqar\'s 8 operations, done on a scratch queue>, "ping"}, '
                  '"message_volume": {"free", "claimed", "total"}, "workers": [member '
                  "ids]}`` (the volume of every database; see "
                  "``herald.storage.operation_status``)."),
    # -- queues (1.0) ------------------------------------------------------
    Operation("queue_create", (_Q, _a("metadata", None)), _W, Route.QUEUE_CREATE,
              "Queue could not be created.", _ALONE, "queues.create",
              doc="Create the queue; True if new, False if it existed (metadata untouched)."),
    Operation("queue_get_metadata", (_Q,), _R, _QUEUE, "Queue metadata could not be retrieved.",
              _ALONE, "queues.get_metadata",
              doc="The stored metadata (no defaults filled in), or None if no such queue."),
    Operation("queue_set_metadata", (_Q, _a("metadata")), _W, _QUEUE,
              "Queue metadata could not be updated.", _ALONE, "queues.set_metadata",
              doc="Replace the metadata; raises QueueDoesNotExist."),
    Operation("queue_delete", (_Q,), _W, Route.QUEUE_DELETE, "Queue could not be deleted.",
              _ALONE, "queues.delete",
              doc="Delete the queue with its messages and claims (no-op if missing)."),
    Operation("queue_list", (_a("marker", None), _a("limit", 10), _a("detailed", False),
                             _a("name", None), _a("metadata_filters", None),
                             _a("with_count", False)), _R, Route.QUEUE_LIST,
              "Queues could not be listed.", _ALONE, "queues.list",
              doc='``{"queues": [{"name": str[, "metadata": {stored}]}], "count": int | '
                  "None}``. Sorted by name, names > marker; ``name`` is a substring "
                  "filter; ``metadata_filters`` keeps queues whose metadata[key] == value; "
                  "``count`` (all queues of the project) only when ``with_count``."),
    Operation("queue_stats", (_Q,), _R, _QUEUE, "Queue stats could not be read.", _ALONE,
              "queues.stats",
              doc='``{"free", "claimed", "total"[, "oldest", "newest"]}``; oldest/newest '
                  "are StoredMessages (``created`` included) and present only when "
                  "total > 0. Zeros if missing."),
    Operation("queue_purge", (_Q, _a("resource_types", ("messages", "subscriptions"))), _W, _QUEUE,
              "Queue could not be purged.", _ALONE, "queues.purge",
              doc="Delete all messages and/or subscriptions of the queue."),
    # -- messages (1.0; idempotency_key and deliveries 1.3) -----------------
    Operation("message_post", (_Q, _a("messages", param="items"), _a("body_size", 0),
                               _a("idempotency_key", None, omit_none=True)), _W, _QUEUE,
              "Messages could not be enqueued.", Coalescing.SHARED_POST, "messages.post",
              context=("client_id", "request_id", "traceparent", "operation_id", "attempt"),
              doc='Store ``messages`` (each ``{"body", "ttl": int|None[, "group": str]'
                  '[, "delay": raw]}``) '
                  "in one transaction, creating the queue if needed (and running the "
                  "message pipeline, 1.1); returns ids in order. The worker applies the "
                  "queue's metadata: ``_default_message_ttl`` for a None ttl, the "
                  "``_max_messages_post_size`` cap against ``body_size`` (raw request "
                  "bytes), and ``_default_message_delay`` (a ``delay`` is only honoured, "
                  "and then validated, when the queue has one). ``idempotency_key`` (1.3; "
                  "sent only when given): a post with a key seen on this queue within "
                  "``[storage] idempotency_window`` stores nothing and returns the first "
                  "post's ids; the same key with other messages raises Conflict."),
    Operation("message_deliveries", (_Q, _a("message_id")), _R, _QUEUE,
              "Message deliveries could not be retrieved.", _ALONE,
              "endpoint.message_deliveries",
              doc='(1.3) The delivery history of one message, which may be gone already: '
                  '``{"message_id", "exists": bool, "claims": [{"claim_id", "client_id", '
                  '"claimed_at", "ttl", "grace", "claim_count"}], "pushes": '
                  '[{"subscription_id", "subscriber", "kind", "attempt", "attempted_at", '
                  '"outcome", "status", "error", "latency_ms"}]}``, oldest first, times '
                  "ISO 8601. Raises MessageDoesNotExist when there is neither the message "
                  "nor any history of it."),
    Operation("message_list", (_Q, _a("marker", None), _a("limit", 10), _a("echo", False),
                               _a("include_claimed", False), _a("include_delayed", False)),
              _R, _QUEUE, "Messages could not be listed.", _ALONE, "messages.list",
              context=("client_id",),
              doc='``{"messages": [StoredMessage], "marker": str | None}`` in posting '
                  "order. ``marker`` is opaque (the last message's position); an "
                  "uninterpretable one gives an empty page. Echo filtering uses "
                  "``ctxt.client_id``."),
    Operation("message_get", (_Q, _a("message_id")), _R, _QUEUE, "Message could not be retrieved.",
              _ALONE, "messages.get", doc="One StoredMessage; raises MessageDoesNotExist."),
    Operation("message_get_many", (_Q, _a("message_ids")), _R, _QUEUE,
              "Messages could not be listed.", _ALONE, "messages.get_many",
              doc="The StoredMessages among ``message_ids`` that exist (maybe none)."),
    Operation("message_delete", (_Q, _a("message_id"), _a("claim_id", None)), _W, _QUEUE,
              "Message could not be deleted.", Coalescing.SHARED_DELETE, "messages.delete",
              doc="Delete one message honouring claims (MessageIsClaimed / ClaimMismatch)."),
    Operation("message_delete_many", (_Q, _a("message_ids"), _a("claim_ids", None)), _W, _QUEUE,
              "Messages could not be deleted.", _ALONE, "messages.delete_many",
              doc="Delete the given messages regardless of claims; with ``claim_ids`` "
                  "every claim id must hold one of the messages (else BadRequest)."),
    Operation("message_pop", (_Q, _a("limit")), _W, _QUEUE, "Messages could not be popped.", _ALONE,
              "messages.pop",
              doc="Atomically remove and return up to ``limit`` unclaimed, visible "
                  "messages, oldest first (StoredMessages)."),
    Operation("message_release", (_Q, _a("message_id"), _a("claim_id"), _a("delay", 0)), _W,
              _QUEUE, "Message could not be released.", _ALONE, "messages.release",
              doc="(1.7) Take it out of its live claim, claimable again in ``delay`` s, "
                  "its claim count kept (docs/release.md). Raises MessageDoesNotExist, "
                  "ReleaseRefused (another live claim holds it) or ClaimDoesNotExist."),
    # -- claims (1.0; connection and claim_release_connection 1.5) ----------
    Operation("claim_create", (_Q, _a("ttl"), _a("grace"), _a("limit", 10),
                               _a("connection", None, omit_none=True)), _W, _QUEUE,
              "Messages could not be claimed.", _SHARED, "endpoint.claim_create",
              doc='``{"claim_id": str | None, "messages": [StoredMessage]}``; claim_id is '
                  "None (and messages empty) when nothing was claimable. Recorded in the "
                  "delivery history with ``ctxt.client_id`` (1.3). ``connection`` (1.5; "
                  '``{"gateway_id", "connection_id"}``, sent only when given) registers '
                  "the claim with a websocket connection (``release_on_close``)."),
    Operation("claim_get", (_Q, _a("claim_id")), _R, _QUEUE, "Claim could not be queried.", _ALONE,
              "claims.get",
              doc='``{"id", "ttl", "age", "messages": [StoredMessage]}``; raises '
                  "ClaimDoesNotExist when unknown, expired, released or empty."),
    Operation("claim_update", (_Q, _a("claim_id"), _a("ttl"), _a("grace"),
                               _a("connection", None, omit_none=True)), _W, _QUEUE,
              "Claim could not be updated.", _SHARED, "claims.update",
              doc="Renew a live claim; raises ClaimDoesNotExist. The renewal drops the "
                  "claim's connection registration, or (1.5) moves it to ``connection``."),
    # Not shared: it may fire post-commit wake-ups of its own.
    Operation("claim_delete", (_Q, _a("claim_id")), _W, _QUEUE, "Claim could not be deleted.",
              _ALONE, "claims.delete", doc="Release the claim's messages (no-op if unknown)."),
    # Not shared: it fires post-commit wake-ups of its own.
    Operation("claim_release_connection", (_Q, _a("gateway_id"), _a("connection_id")), _W,
              _QUEUE, "Claims could not be released.", _ALONE, "claim_connections.release",
              doc="(1.5) Release the queue's claims still registered with the closed "
                  "websocket connection (in the caller's project only); their count."),
    # -- dead-letter redrive (1.6) ---------------------------------------------
    Operation("queue_redrive", (_Q, _a("destination", None), _a("max_per_second", None),
                                _a("limit", None)), _W, _QUEUE,
              "Redrive could not be started.", _ALONE, "redrive.start",
              doc="(1.6) Move the DLQ's messages back (to ``destination``, else each to its "
                  "source; ``max_per_second``, ``limit``: None for no bound). Returns the "
                  'task ``{"id", "status": "running", "moved": 0, "total", '
                  '"skipped", "skipped_queues", "destination", "max_per_second", "limit", '
                  '"created", "updated"}``; a worker runs it. Messages whose source is in '
                  "another database (pooling) stay, counted in ``skipped``. Conflict while "
                  "another redrive runs, or for a destination elsewhere."),
    Operation("queue_redrive_get", (_Q, _a("redrive_id", param="task_id")), _R, _QUEUE,
              "Redrive could not be retrieved.", _ALONE, "redrive.get",
              doc="(1.6) A redrive task as ``queue_redrive`` returns it, its ``status`` "
                  '``"running"`` or ``"done"`` and ``moved`` its progress; raises NotFound.'),
    # -- subscriptions (1.1; subscription_test 1.3) ---------------------------
    Operation("subscription_create", (_Q, _a("subscriber"), _a("ttl", None),
                                      _a("options", None), _a("send_confirmation", False),
                                      _a("connection", None)), _W, _QUEUE,
              "Subscription could not be created.", _ALONE, "endpoint.subscription_create",
              doc='``{"subscription_id": str, "created": bool, "confirmed": bool}``. '
                  "Creates the queue if needed. An existing live subscription of the same "
                  "subscriber is returned with ``created`` False and left unchanged (the "
                  "edge decides between 201 and 409). ``send_confirmation`` (REST) queues "
                  "a SubscriptionConfirmation when confirmation is enabled on the worker "
                  "and the subscription is not confirmed. ``connection`` "
                  '(``{"gateway_id", "connection_id"}``) subscribes a websocket '
                  "connection instead of ``subscriber``."),
    Operation("subscription_list", (_Q, _a("marker", None), _a("limit", 10)), _R, _QUEUE,
              "Subscriptions could not be listed.", _ALONE, "subscriptions.list",
              doc='``{"subscriptions": [Subscription], "marker": str | None}``, creation '
                  "order, ids > marker, expired ones never listed."),
    Operation("subscription_get", (_Q, _a("subscription_id")), _R, _QUEUE,
              "Subscription could not be retrieved.", _ALONE, "subscriptions.get",
              doc="One Subscription with its ``delivery`` statistics; raises "
                  "SubscriptionDoesNotExist."),
    Operation("subscription_update", (_Q, _a("subscription_id"), _a("changes")), _W, _QUEUE,
              "Subscription could not be updated.", _ALONE, "subscriptions.update",
              doc="Apply any of ``subscriber``, ``ttl`` (restarts expiry), ``options`` "
                  "(replaced whole); raises SubscriptionDoesNotExist or Conflict."),
    Operation("subscription_delete", (_Q, _a("subscription_id")), _W, _QUEUE,
              "Subscription could not be deleted.", _ALONE, "subscriptions.delete",
              doc="Delete it with its pending deliveries (no-op if missing)."),
    Operation("subscription_confirm", (_Q, _a("subscription_id"), _a("confirmed")), _W, _QUEUE,
              "Subscription could not be confirmed.", _ALONE, "subscriptions.confirm",
              context=("request_id",),
              doc="Set ``confirmed`` (id looked up in the project only); un-confirming "
                  "queues an UnsubscribeConfirmation when enabled. Raises "
                  "SubscriptionDoesNotExist."),
    Operation("subscription_test", (_Q, _a("subscription_id")), _R, _QUEUE,
              "Subscription could not be tested.", _ALONE, "endpoint.subscription_test",
              doc="(1.3) Send one test notification to the subscriber through the "
                  "delivery transports, once, recorded like any attempt (history and "
                  'health). ``{"delivered": bool, "status": int | None, "error": str | '
                  'None, "latency_ms": float, "attempted_at": ISO 8601, "payload": '
                  "{...}}``. Raises SubscriptionDoesNotExist."),
    Operation("subscription_delete_connection", (_a("gateway_id"), _a("connection_id")), _W,
              _EVERY, "Subscriptions could not be deleted.", _ALONE,
              "subscriptions.delete_connection",
              doc="Delete the subscriptions of a closed websocket connection; their count."),
    # -- pools and flavors (1.4): global pools, per-project flavors -----------
    Operation("pool_list", (_a("marker", None), _a("limit", 10), _a("detailed", False)), _R,
              _MAIN, "Pools could not be listed.", _ALONE, "catalog.pool_list",
              doc='``[{"name", "uri", "weight", "flavor"[, "options"]}]`` sorted by name. '
                  "Pools are global (every pool is listed); ``flavor`` is the caller's "
                  "project's flavor using the pool, else None: flavors are per project."),
    Operation("pool_get", (_a("name"), _a("detailed", False)), _R, _MAIN,
              "Pool could not be retrieved.", _ALONE, "catalog.pool_get",
              doc="One pool (as listed); raises NotFound."),
    Operation("pool_put", (_a("name"), _a("uri"), _a("weight"), _a("flavor", None),
                           _a("options", None)), _W, _MAIN, "Pool could not be created.", _ALONE,
              "catalog.pool_put",
              doc="Create or overwrite; the database at ``uri`` is migrated (BadRequest "
                  "``cannot connect to <uri>`` when that fails); Conflict when another "
                  "pool has the URI."),
    Operation("pool_update", (_a("name"), _a("changes")), _W, _MAIN, "Pool could not be updated.",
              _ALONE, "catalog.pool_update",
              doc="Apply any of uri/weight/flavor/options; the pool after it (detailed)."),
    Operation("pool_delete", (_a("name"),), _W, _MAIN, "Pool could not be deleted.", _ALONE,
              "catalog.pool_delete",
              doc="No-op if missing; Forbidden for the last pool of the caller's flavor, "
                  "Conflict while the pool holds queues or another project's flavor uses it."),
    Operation("flavor_list", (_a("marker", None), _a("limit", 10), _a("detailed", False)),
              _R, _MAIN, "Flavors could not be listed.", _ALONE, "catalog.flavor_list",
              doc='The project\'s flavors ``[{"name"[, "pool_list", "capabilities"]}]``.'),
    Operation("flavor_get", (_a("name"),), _R, _MAIN, "Flavor could not be retrieved.", _ALONE,
              "catalog.flavor_get",
              doc='``{"name", "pool_list", "capabilities"}``; raises NotFound.'),
    Operation("flavor_put", (_a("name"), _a("pool_list"), _a("capabilities", None)), _W, _MAIN,
              "Flavor could not be created.", _ALONE, "catalog.flavor_put",
              doc="Create or overwrite, assigning the pools (BadRequest for unknown ones)."),
    Operation("flavor_update", (_a("name"), _a("pool_list")), _W, _MAIN,
              "Flavor could not be updated.", _ALONE, "catalog.flavor_update",
              doc="Replace the pool list (pools left out are detached); the flavor after it."),
    Operation("flavor_delete", (_a("name"),), _W, _MAIN, "Flavor could not be deleted.", _ALONE,
              "catalog.flavor_delete",
              doc="Delete it and detach its pools (no-op if missing)."),
)


def index(operations: Iterable[Operation]) -> Mapping[str, Operation]:
    """The operations by name; refuses a table that names one twice or
    declares a required argument after an optional one."""
    found: dict[str, Operation] = {}
    for op in operations:
        if op.name in found or op.name.startswith("_"):
            raise ValueError(f"operation {op.name!r} is declared twice or is private")
        optional = False
        for arg in op.args:
            if arg.required and optional:
                raise ValueError(f"{op.name}: required {arg.name} after an optional argument")
            optional = optional or not arg.required
        found[op.name] = op
    return found


#: ``OPERATIONS`` by name (validated at import).
BY_NAME: Mapping[str, Operation] = index(OPERATIONS)

#: Never coalesced by the edge (``batch`` itself must not nest either).
UNCOALESCED = frozenset(op.name for op in OPERATIONS if op.coalescing is Coalescing.NEVER)

#: Whose second run would answer otherwise (a create "existed", a pop, a release 404, a redrive 409,
#: a test): the worker records the reply under the operation id (``herald.storage.idempotency``).
REPLAYED = frozenset({"queue_create", "subscription_create", "subscription_test", "message_pop",
                      "message_release", "queue_redrive"})
#: What an edge may send again when no worker answered it (``herald.common.rpc.resend``): reads,
#: writes whose second run changes nothing more, ``REPLAYED``, ``message_post`` (recorded under
#: its operation id) and ``claim_create`` (the claim's id is the operation id).
RESENDABLE = REPLAYED | frozenset(op.name for op in OPERATIONS if not op.writes) | {
    "message_post", "claim_create", "message_delete", "message_delete_many", "claim_update",
    "claim_delete", "queue_set_metadata", "queue_delete", "queue_purge", "subscription_update",
    "subscription_delete", "subscription_confirm", "subscription_delete_connection",
    "pool_put", "pool_update", "pool_delete", "flavor_put", "flavor_update", "flavor_delete"}

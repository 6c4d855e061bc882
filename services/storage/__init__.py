"""herald.storage: the storage workers, the only processes that hold data.

The edges (``herald.api``, ``herald.ws_gateway``) validate requests and call
the StorageAPI over oslo.messaging RPC; everything behind that call lives
here. A request arrives at the RPC boundary, runs (alone or in a coalesced
batch) through a controller on the database of its queue's pool, and a post
runs the pipeline, whose outbox rows the dispatcher delivers. This package
must not validate what the edges validate, speak HTTP or websocket to
clients, or keep state that a restart would lose: the database is the
arbiter (docs/architecture.md).

The map, one line per module (tests/unit/test_layout.py checks that every
module is named here):

RPC boundary
    ``endpoint``         StorageAPI's RPC endpoint: one method per operation of the table.
    ``operation_guard``  what every operation runs inside: deadlock retries, 503s, audit.
    ``health``           readiness of a worker: its database and its own RPC server answer.
    ``operation_status`` the admin health report's eight operations, done on a scratch queue.

Batch runner
    ``batch_runner``     a coalesced batch: shared transactions, merged posts and deletes.

Controllers (one instance per database; each operation one short transaction)
    ``queues``           queues: lazy creation, metadata, listing, stats, purge.
    ``messages``         messages: list, get, delete, pop, release; posts handed to ``posting``.
    ``claims``           claims: create, read, renew, release; dead-letter moves.
    ``claim_connections`` claims registered with a websocket connection: released on close.
    ``claim_groups``     claims of queues with message groups: what a claim may take.
    ``dead_letters``     dead-letter moves: in the claim's transaction, or held across pools.
    ``subscriptions``    subscriptions: create, list, get, update, delete, confirm.
    ``confirmations``    (un)subscribe confirmation messages: signed outbox rows.
    ``subscription_versions`` a version per queue's subscriptions, bumped by each change.
    ``history``          the delivery history: claims and push attempts, append-only.
    ``testfire``         test-firing a subscription: one notification, sent now.
    ``redrive``          dead-letter redrive tasks: start, progress, batches moved in transactions.

Posting
    ``posting``          the post paths: single, idempotent, batch to one queue, batch to several.
    ``post_rows``        a post's checks against its queue's metadata, and its rows.
    ``post_caches``      a worker's lock-free guesses of queue metadata and stage work.
    ``locked_insert``    the PostgreSQL statement that locks, checks and inserts a post.
    ``idempotency``      Idempotency-Key records, in the post's transaction.

Routing and pools
    ``pools``            routing: the database each operation's route names; engines per pool.
    ``pool_catalog``     pools and flavors: tables, admin CRUD, tenancy, placement of queues.

Pipeline, notifier, outbox, delivery
    ``pipeline``         the stages run in every post's transaction (``message_pipeline``).
    ``notifier``         the notifier stage: outbox rows (webhook, mail), broadcasts (websocket).
    ``recipients``       who a post notifies: read, or remembered per worker while unchanged.
    ``recipient_warmer`` reads a queue's recipients again soon after its subscriptions changed.
    ``broadcasts``       websocket pushes, one per gateway and post, sent once it commits.
    ``outbox``           the outbox rows, in SQL: write, lease, record attempts, collect.
    ``outbox_signal``    the in-process wake-up of dispatchers when outbox rows commit.
    ``dispatcher``       a worker's outbox dispatcher: lease, deliver, retry, record.
    ``delivery``         one delivery attempt per subscriber kind: webhook, mailto, websocket.
    ``push_batches``     websocket pushes bound for one gateway, sent together.

Coordination and background jobs
    ``worker``           a storage worker: database, tooz membership, background jobs, RPC server.
    ``wiring``           a worker's per-process objects, reached by controllers via their database.
    ``redrive_runner``   a worker's thread adopting orphaned redrive tasks and running them.
    ``statistics``       planner statistics of the hot tables, kept fresh.
    ``backlog``          queue depths and outbox backlog of the owned queues, for /metrics.
    ``counters``         the claim counters of /metrics, counted once committed.

Schema, engine and migrations
    ``schema``           SQLAlchemy Core tables: the current schema.
    ``migrations/``      Alembic migrations of that schema (``herald db upgrade``).
    ``engine``           engines, transactions, shared batch transactions, after-commit callbacks.
    ``sqlite_engine``    SQLite's side: pragmas, BEGIN IMMEDIATE, one writer per file in-process.
    ``base``             row codecs and SQL predicates the controllers share.
    ``clock``            the workers' single source of "now" (tests replace it).
"""

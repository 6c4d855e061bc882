"""SQLAlchemy Core tables of the storage workers (the current schema).

This is what the controllers query; the Alembic migrations in
``herald.storage.migrations`` create the same tables and must be kept in step
with it by hand (a migration never imports this module: migrations are frozen
history, this module moves on). Times are float epoch seconds
(``herald.common.timeutils``), compared in SQL with parameters from
``herald.storage.clock``. No behaviour lives here.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata_obj = sa.MetaData()

# BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" aliases the rowid
# (and is 64-bit anyway), so the variant keeps autoincrement working there.
BigSeq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

queues = sa.Table(
    "queues",
    metadata_obj,
    sa.Column("project", sa.String(256), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    # JSON text (json.dumps of the stored object): portable and byte-exact.
    sa.Column("metadata", sa.Text, nullable=False, default="{}"),
    sa.Column("created", sa.Float(precision=53), nullable=False),
    # Set once a message with a group is stored here (migration 0007): the
    # fast claim path serves only queues that never saw a group.
    sa.Column("grouped", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
)

messages = sa.Table(
    "messages",
    metadata_obj,
    # The posting position and the listing marker. Monotonic: on SQLite the
    # table is AUTOINCREMENT so a deleted newest row's number is never reused
    # (a reused number would hide the new message behind an old marker).
    sa.Column("seq", BigSeq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    # json.dumps(serializer.encode(body)): Text so that a JSON null body survives.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("ttl", sa.Integer, nullable=False),
    sa.Column("created", sa.Float(precision=53), nullable=False),
    sa.Column("expires", sa.Float(precision=53), nullable=False),
    sa.Column("visible_at", sa.Float(precision=53), nullable=False),
    sa.Column("client_id", sa.String(256), nullable=False, default=""),
    sa.Column("claim_id", sa.String(32), nullable=True),
    sa.Column("claim_expires", sa.Float(precision=53), nullable=True),
    sa.Column("claim_count", sa.Integer, nullable=False, default=0),
    sa.Column("checksum", sa.String(64), nullable=True),
    # The message's group ("group" on the wire; NULL: none): claims keep
    # each group's post order and hand a group to one claim at a time.
    sa.Column("group_id", sa.String(128), nullable=True),
    # A dead-lettered message's queue of origin (redrive sends it back).
    sa.Column("source_queue", sa.String(64), nullable=True),
    sa.Index("ix_messages_project_queue_seq", "project", "queue", "seq"),
    sa.Index("ix_messages_expires", "expires"),
    sa.Index("ix_messages_claim_id", "claim_id"),
    # Grouped messages only: ungrouped posts maintain neither index.
    sa.Index("ix_messages_group_seq", "project", "queue", "group_id", "seq",
             postgresql_where=sa.text("group_id IS NOT NULL"),
             sqlite_where=sa.text("group_id IS NOT NULL")),
    sa.Index("ix_messages_group_claimed", "project", "queue", "group_id",
             postgresql_where=sa.text("group_id IS NOT NULL AND claim_id IS NOT NULL"),
             sqlite_where=sa.text("group_id IS NOT NULL AND claim_id IS NOT NULL")),
    sqlite_autoincrement=True,
)

claims = sa.Table(
    "claims",
    metadata_obj,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("ttl", sa.Integer, nullable=False),
    sa.Column("grace", sa.Integer, nullable=False),
    sa.Column("updated", sa.Float(precision=53), nullable=False),
    sa.Column("expires", sa.Float(precision=53), nullable=False),
    # A claim made over a websocket with ``release_on_close``: the gateway
    # (its tooz member id) and connection it is released with. NULL for every
    # other claim, and once renewed or released the ordinary way.
    sa.Column("gateway_id", sa.String(128), nullable=True),
    sa.Column("connection_id", sa.String(64), nullable=True),
    sa.Index("ix_claims_project_queue", "project", "queue"),
    sa.Index("ix_claims_expires", "expires"),
    sa.Index("ix_claims_gateway_id", "gateway_id"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata_obj,
    # Time-ordered ids (see herald.storage.subscriptions.new_subscription_id):
    # "id ascending" is creation order, which is the listing order and marker.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("subscriber", sa.Text, nullable=False),
    # "uri": webhook / mailto / trust+ subscribers; "websocket": a connection
    # of a gateway. Only the storage sets "websocket", so a REST client can
    # never aim pushes at somebody else's connection by choosing a URI.
    sa.Column("kind", sa.String(16), nullable=False, default="uri"),
    sa.Column("ttl", sa.Integer, nullable=False),
    sa.Column("options", sa.Text, nullable=False, default="{}"),
    sa.Column("confirmed", sa.Boolean, nullable=False, default=False),
    sa.Column("created", sa.Float(precision=53), nullable=False),
    sa.Column("expires", sa.Float(precision=53), nullable=False),
    # Delivery statistics, updated with every attempt (shown on GET).
    sa.Column("delivery_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("deliveries", sa.Integer, nullable=False, default=0),
    sa.Column("delivery_failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_attempt", sa.Float(precision=53), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_success", sa.Float(precision=53), nullable=True),
    # Health: failed attempts since the last success (0 when healthy), and
    # when the last failed attempt happened.
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0,
              server_default="0"),
    sa.Column("last_failure", sa.Float(precision=53), nullable=True),
    # Webhook signing (herald.common.webhook_signing): the current secret and
    # the replaced ones still in their overlap, JSON, in clear (an HMAC needs
    # the key). NULL for websocket connection subscribers, which get pushes,
    # not webhooks.
    sa.Column("signing", sa.Text, nullable=True),
    sa.UniqueConstraint("project", "queue", "subscriber", name="uq_subscriptions_subscriber"),
    sa.Index("ix_subscriptions_project_queue_id", "project", "queue", "id"),
    sa.Index("ix_subscriptions_expires", "expires"),
)

subscription_versions = sa.Table(
    "subscription_versions",
    metadata_obj,
    # The (project, queue)'s subscription version is the sum of its rows'
    # (no row: 0). Every change to its subscriptions adds 1 to one row, a
    # random shard, in the change's transaction
    # (herald.storage.subscription_versions): a worker's cache of the
    # queue's recipients is good while the sum is the one it read them with.
    # Shards, so that writers of one queue rarely wait on one row's lock;
    # rows are never deleted (a sum must never repeat).
    sa.Column("project", sa.String(256), primary_key=True),
    sa.Column("queue", sa.String(64), primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata_obj,
    # Delivery order: rows of one post are consecutive, in message order.
    sa.Column("seq", BigSeq, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("subscription_id", sa.String(32), nullable=False),
    # "notification" or "confirmation" (SubscriptionConfirmation/Unsubscribe...).
    sa.Column("kind", sa.String(16), nullable=False),
    # Copies taken when the row is written, so a delivery needs no other row.
    sa.Column("subscriber", sa.Text, nullable=False),
    sa.Column("subscriber_kind", sa.String(16), nullable=False),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False, default="-"),
    sa.Column("created", sa.Float(precision=53), nullable=False),
    # "pending" (to deliver), "delivered", "failed" (retry policy exhausted).
    sa.Column("state", sa.String(16), nullable=False, default="pending"),
    sa.Column("next_attempt", sa.Float(precision=53), nullable=False),
    sa.Column("leased_until", sa.Float(precision=53), nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_attempt", sa.Float(precision=53), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("done_at", sa.Float(precision=53), nullable=True),
    # The message a notification row delivers (None for confirmations and
    # tests): links push attempts to the message's delivery history.
    sa.Column("message_id", sa.String(32), nullable=True),
    # W3C traceparent of the post's span (tracing on, else None): each
    # delivery's span continues that trace (herald.common.tracing).
    sa.Column("traceparent", sa.String(128), nullable=True),
    sa.Index("ix_outbox_state_next_attempt", "state", "next_attempt"),
    sa.Index("ix_outbox_project_queue", "project", "queue"),
    sa.Index("ix_outbox_subscription_id", "subscription_id"),
    sqlite_autoincrement=True,
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata_obj,
    # The primary key is the arbiter of concurrent duplicates: of two posts
    # with one key, only one transaction can insert this row.
    sa.Column("project", sa.String(256), primary_key=True),
    sa.Column("queue", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    # sha256 of the accepted messages: a key reused for another post is refused.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("message_ids", sa.Text, nullable=False),  # JSON list, post order
    # An operation's recorded reply, JSON (idempotency.remember_reply), else null.
    sa.Column("reply", sa.Text, nullable=True),
    sa.Column("created", sa.Float(precision=53), nullable=False),
    sa.Column("expires", sa.Float(precision=53), nullable=False),
    sa.Index("ix_idempotency_keys_expires", "expires"),
)

claim_history = sa.Table(
    "claim_history",
    metadata_obj,
    # One row per claimed message, written by the claim's own transaction
    # (one multi-row INSERT per claim).
    sa.Column("seq", BigSeq, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(32), nullable=False),
    sa.Column("claim_id", sa.String(32), nullable=False),
    sa.Column("client_id", sa.String(256), nullable=False),
    sa.Column("claimed_at", sa.Float(precision=53), nullable=False),
    sa.Column("ttl", sa.Integer, nullable=False),
    sa.Column("grace", sa.Integer, nullable=False),
    sa.Index("ix_claim_history_message_id", "message_id"),
    sa.Index("ix_claim_history_claimed_at", "claimed_at"),
    sqlite_autoincrement=True,
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata_obj,
    # One row per push attempt, written with the attempt's outcome on the
    # outbox row (same transaction).
    sa.Column("seq", BigSeq, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(32), nullable=True),
    sa.Column("subscription_id", sa.String(32), nullable=False),
    sa.Column("subscriber", sa.Text, nullable=False),
    # The outbox row's kind: notification, confirmation or test.
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("outbox_seq", sa.BigInteger, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.Float(precision=53), nullable=False),
    # "delivered", "retry" (will be tried again) or "failed" (given up).
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Index("ix_delivery_attempts_message_id", "message_id"),
    sa.Index("ix_delivery_attempts_subscription_id", "subscription_id"),
    sa.Index("ix_delivery_attempts_attempted_at", "attempted_at"),
    sqlite_autoincrement=True,
)

redrive_tasks = sa.Table(
    "redrive_tasks",
    metadata_obj,
    # One redrive of a dead-letter queue (``queue``): its options, progress
    # and the worker running it (``owner``, alive while ``heartbeat`` is fresh).
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project", sa.String(256), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("destination", sa.String(64), nullable=True),
    sa.Column("max_per_second", sa.Integer, nullable=True),
    sa.Column("max_messages", sa.Integer, nullable=True),
    # Only messages at or before this position move (the DLQ at the start).
    sa.Column("upto_seq", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("moved", sa.Integer, nullable=False),
    # With pooling: the messages left in the DLQ because their destination
    # lives in another database, and those destinations (a JSON list of
    # queue names, NULL when none; migration 0012).
    sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped_queues", sa.Text, nullable=True),
    # "running" or "done".
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created", sa.Float(precision=53), nullable=False),
    sa.Column("updated", sa.Float(precision=53), nullable=False),
    sa.Column("finished", sa.Float(precision=53), nullable=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("heartbeat", sa.Float(precision=53), nullable=True),
    # One running task per queue: the database refuses a second (409).
    sa.Index("ix_redrive_tasks_running", "project", "queue", unique=True,
             postgresql_where=sa.text("status = 'running'"),
             sqlite_where=sa.text("status = 'running'")),
    sa.Index("ix_redrive_tasks_status", "status"),
)

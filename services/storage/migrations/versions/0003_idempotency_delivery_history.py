"""Idempotent posts, claim history, push attempts, subscription health.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("project", sa.String(256), primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("message_ids", sa.Text, nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("expires", _TIME, nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires"])
    op.create_table(
        "claim_history",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("claimed_at", _TIME, nullable=False),
        sa.Column("ttl", sa.Integer, nullable=False),
        sa.Column("grace", sa.Integer, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_claim_history_message_id", "claim_history", ["message_id"])
    op.create_index("ix_claim_history_claimed_at", "claim_history", ["claimed_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=True),
        sa.Column("subscription_id", sa.String(32), nullable=False),
        sa.Column("subscriber", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outbox_seq", sa.BigInteger, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", _TIME, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_delivery_attempts_message_id", "delivery_attempts", ["message_id"])
    op.create_index("ix_delivery_attempts_subscription_id", "delivery_attempts",
                    ["subscription_id"])
    op.create_index("ix_delivery_attempts_attempted_at", "delivery_attempts",
                    ["attempted_at"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("message_id", sa.String(32), nullable=True))
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("consecutive_failures", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("last_failure", _TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("last_failure")
        batch.drop_column("consecutive_failures")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("message_id")
    op.drop_table("delivery_attempts")
    op.drop_table("claim_history")
    op.drop_table("idempotency_keys")

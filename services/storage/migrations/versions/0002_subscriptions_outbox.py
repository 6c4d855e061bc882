"""Subscriptions and the notification outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("subscriber", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ttl", sa.Integer, nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("confirmed", sa.Boolean, nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("expires", _TIME, nullable=False),
        sa.Column("delivery_attempts", sa.Integer, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("delivery_failures", sa.Integer, nullable=False),
        sa.Column("last_attempt", _TIME, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_success", _TIME, nullable=True),
        sa.UniqueConstraint("project", "queue", "subscriber",
                            name="uq_subscriptions_subscriber"),
    )
    op.create_index("ix_subscriptions_project_queue_id", "subscriptions",
                    ["project", "queue", "id"])
    op.create_index("ix_subscriptions_expires", "subscriptions", ["expires"])
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subscriber", sa.Text, nullable=False),
        sa.Column("subscriber_kind", sa.String(16), nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("next_attempt", _TIME, nullable=False),
        sa.Column("leased_until", _TIME, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_attempt", _TIME, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("done_at", _TIME, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_state_next_attempt", "outbox", ["state", "next_attempt"])
    op.create_index("ix_outbox_project_queue", "outbox", ["project", "queue"])
    op.create_index("ix_outbox_subscription_id", "outbox", ["subscription_id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("subscriptions")

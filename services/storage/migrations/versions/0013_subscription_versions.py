"""Subscription versions: ``subscription_versions(project, queue, shard, version)``.

Every write to a (project, queue)'s subscriptions adds 1 to one of its
shard rows in the same transaction (``herald.storage.
subscription_versions``); the queue's version is the sum. A storage worker
may then keep the queue's notification recipients in memory and, on a
post, read these few rows instead of every subscription
(``herald.storage.recipients``). No rows are created here: a queue without
rows reads as version 0, and its first change makes it 1, which no cache
holds for it yet.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_versions",
        sa.Column("project", sa.String(256), primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("shard", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("subscription_versions")

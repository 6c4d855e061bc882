"""Subscription versions: ``subscription_versions(project, queue, version)``.

Every write to a (project, queue)'s subscriptions bumps its number in the
same transaction (``herald.storage.subscription_versions``), so a storage
worker may keep the queue's notification recipients in memory and, on a
post, read this one row instead of every subscription
(``herald.storage.recipients``). No rows are created here: a queue without
a row reads as version 0, and its first bump writes 1, which no cache
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
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("subscription_versions")

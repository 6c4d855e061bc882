"""``outbox.traceparent``: the trace context of the post that caused a delivery.

With tracing on (``herald.common.tracing``) the notifier keeps, on every
outbox row, the W3C traceparent of the post's span; each delivery attempt's
span continues that trace and the webhook carries it on. NULL for rows
written with tracing off and for rows written before this revision: their
deliveries start traces of their own. Adding a nullable column rewrites no
row on PostgreSQL.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("traceparent")

"""Recorded replies: ``idempotency_keys.reply``.

Operations whose second run would answer differently (``queue_create``,
``subscription_create``, ``subscription_test``, ``message_pop``,
``message_release``, ``queue_redrive``) record their reply, JSON text,
under the call's operation key in the transaction of their effect, so an
edge's re-send answers it instead of running again
(``herald.storage.idempotency.remember_reply``). Null for every other row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("reply", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("reply")

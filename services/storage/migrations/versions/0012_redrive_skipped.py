"""``redrive_tasks.skipped`` and ``redrive_tasks.skipped_queues``.

With pooling, a redrive moves messages only into queues that live in the
dead-letter queue's database (``herald.storage.redrive``): a message whose
destination lives on another pool (or, the dead-letter queue being on a
pool, in the main database) stays in the dead-letter queue. The task counts
those messages (``skipped``, 0 for tasks from before this revision) and
names their destinations (``skipped_queues``, a JSON list of queue names;
NULL when none), so another worker adopting the task leaves them too and a
client reading the task is told. Adding the columns rewrites no row on
PostgreSQL (a constant default).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redrive_tasks") as batch:
        batch.add_column(sa.Column("skipped", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("skipped_queues", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("redrive_tasks") as batch:
        batch.drop_column("skipped_queues")
        batch.drop_column("skipped")

"""Ordered message groups and dead-letter redrive (issue 23, features 2 and 3).

* ``messages.group_id``: the message's group (``"group"`` on the wire), NULL
  for messages without one; ``messages.source_queue``: for a dead-lettered
  message, the queue it was dead-lettered from (NULL otherwise).
* ``queues.grouped``: set once a message with a group is stored in the
  queue; the fast claim path only serves queues where it is false, so the
  claims of queues that never saw a group cost what they did before.
* Two partial indexes on the grouped messages only (ungrouped rows are not
  in them, so posting an ungrouped message maintains neither): a group's
  messages in position order, and a group's claimed messages.
* ``redrive_tasks``: one row per redrive of a dead-letter queue, its
  progress, and the worker that runs it; at most one running per queue
  (a partial unique index: the database refuses the second).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("group_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("source_queue", sa.String(64), nullable=True))
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("grouped", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    grouped = sa.text("group_id IS NOT NULL")
    op.create_index("ix_messages_group_seq", "messages",
                    ["project", "queue", "group_id", "seq"],
                    postgresql_where=grouped, sqlite_where=grouped)
    claimed = sa.text("group_id IS NOT NULL AND claim_id IS NOT NULL")
    op.create_index("ix_messages_group_claimed", "messages",
                    ["project", "queue", "group_id"],
                    postgresql_where=claimed, sqlite_where=claimed)
    op.create_table(
        "redrive_tasks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(64), nullable=True),
        sa.Column("max_per_second", sa.Integer, nullable=True),
        sa.Column("max_messages", sa.Integer, nullable=True),
        # Only messages at or before this position are moved (what the DLQ
        # held when the task started: later dead letters wait for the next).
        sa.Column("upto_seq", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("moved", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("updated", _TIME, nullable=False),
        sa.Column("finished", _TIME, nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("heartbeat", _TIME, nullable=True),
    )
    running = sa.text("status = 'running'")
    op.create_index("ix_redrive_tasks_running", "redrive_tasks", ["project", "queue"],
                    unique=True, postgresql_where=running, sqlite_where=running)
    op.create_index("ix_redrive_tasks_status", "redrive_tasks", ["status"])


def downgrade() -> None:
    op.drop_index("ix_redrive_tasks_status", "redrive_tasks")
    op.drop_index("ix_redrive_tasks_running", "redrive_tasks")
    op.drop_table("redrive_tasks")
    op.drop_index("ix_messages_group_claimed", "messages")
    op.drop_index("ix_messages_group_seq", "messages")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("grouped")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("source_queue")
        batch.drop_column("group_id")

"""Initial schema: queues, messages, claims.

Revision ID: 0001
Revises:
Create Date: 2024-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("project", sa.String(256), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created", _TIME, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("ttl", sa.Integer, nullable=False),
        sa.Column("created", _TIME, nullable=False),
        sa.Column("expires", _TIME, nullable=False),
        sa.Column("visible_at", _TIME, nullable=False),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=True),
        sa.Column("claim_expires", _TIME, nullable=True),
        sa.Column("claim_count", sa.Integer, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_project_queue_seq", "messages", ["project", "queue", "seq"])
    op.create_index("ix_messages_expires", "messages", ["expires"])
    op.create_index("ix_messages_claim_id", "messages", ["claim_id"])
    op.create_table(
        "claims",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(256), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("ttl", sa.Integer, nullable=False),
        sa.Column("grace", sa.Integer, nullable=False),
        sa.Column("updated", _TIME, nullable=False),
        sa.Column("expires", _TIME, nullable=False),
    )
    op.create_index("ix_claims_project_queue", "claims", ["project", "queue"])
    op.create_index("ix_claims_expires", "claims", ["expires"])


def downgrade() -> None:
    op.drop_table("claims")
    op.drop_table("messages")
    op.drop_table("queues")

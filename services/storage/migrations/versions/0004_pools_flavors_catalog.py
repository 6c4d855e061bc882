"""Pools, flavors and the queue catalog; wider project columns for topics.

The pool tables are used only in the main database (a pool database gets
them too, empty: every database has one schema). Topics are stored under
the project plus a suffix (``herald.api.handlers.topics``), so the project
columns grow from 256 to 300 characters on PostgreSQL; SQLite does not
enforce lengths and is left alone (a batch rebuild of big tables for nothing).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)
_PROJECT_TABLES = ("queues", "messages", "claims", "subscriptions", "outbox")


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("uri", sa.String(255), nullable=False, unique=True),
        sa.Column("weight", sa.BigInteger, nullable=False),
        sa.Column("flavor", sa.String(255), nullable=True),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("created", _TIME, nullable=False),
    )
    op.create_table(
        "flavors",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("project", sa.String(300), nullable=False),
        sa.Column("capabilities", sa.Text, nullable=False),
        sa.Column("created", _TIME, nullable=False),
    )
    op.create_table(
        "catalog",
        sa.Column("project", sa.String(300), primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("pool", sa.String(64), nullable=False),
    )
    op.create_index("ix_catalog_pool", "catalog", ["pool"])
    if op.get_bind().dialect.name == "postgresql":
        for table in _PROJECT_TABLES:
            op.alter_column(table, "project", type_=sa.String(300),
                            existing_type=sa.String(256), existing_nullable=False)


def downgrade() -> None:
    op.drop_index("ix_catalog_pool", "catalog")
    op.drop_table("catalog")
    op.drop_table("flavors")
    op.drop_table("pools")

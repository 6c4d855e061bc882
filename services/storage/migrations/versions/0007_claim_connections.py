"""Claims released with their websocket connection: ``claims.gateway_id``, ``connection_id``.

A claim created over a websocket with ``"release_on_close": true`` records
the gateway (its member id in the tooz group ``herald.ws``) and the
connection that own it. The gateway releases the claim when the connection
closes; a storage worker releases the claims of a gateway that left the
group (killed). Both columns are NULL for every other claim; the index
serves the workers' sweep for registered claims.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("gateway_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("connection_id", sa.String(64), nullable=True))
    op.create_index("ix_claims_gateway_id", "claims", ["gateway_id"])


def downgrade() -> None:
    op.drop_index("ix_claims_gateway_id", table_name="claims")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("connection_id")
        batch.drop_column("gateway_id")

"""Webhook signing secrets: ``subscriptions.signing``.

Every webhook delivery is signed per the Standard Webhooks specification
with its subscription's secret (``herald.common.webhook_signing``). The
column holds the signing record, JSON text: ``{"secret": "whsec_...",
"previous": [{"secret", "until"}, ...]}``, in clear (an HMAC needs the key).

Each existing subscription of kind ``uri`` gets a generated secret here, so
its deliveries are signed from the upgrade on; its owner reads the secret
with GET (``options.signing_secret``). Websocket connection subscriptions
get none: their pushes are no webhooks. The secret is generated inline,
not by the module, so this record of the upgrade never changes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import base64
import json
import os

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("signing", sa.Text, nullable=True))
    table = sa.table("subscriptions", sa.column("id", sa.String), sa.column("kind", sa.String),
                     sa.column("signing", sa.Text))
    conn = op.get_bind()
    ids = conn.execute(sa.select(table.c.id).where(table.c.kind == "uri")).scalars().all()
    for sid in ids:
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")
        conn.execute(sa.update(table).where(table.c.id == sid)
                     .values(signing=json.dumps({"secret": secret, "previous": []})))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("signing")

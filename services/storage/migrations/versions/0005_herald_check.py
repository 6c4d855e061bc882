"""``herald_check(ok, message)``: a statement's own guard (PostgreSQL only).

A poster's last statement locks its queues and inserts its messages, and
may travel with the COMMIT in one round trip
(``herald.storage.locked_insert``). The check that the queues are still as
the posts were validated against must then fail the statement -- and so the
COMMIT behind it -- rather than be read by the client afterwards. This
function raises SQLSTATE ``HR001`` with ``message`` unless ``ok`` is true,
and returns true otherwise. SQLite has no such statements: nothing to do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE OR REPLACE FUNCTION herald_check(ok boolean, message text)
        RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN
            IF ok IS NOT TRUE THEN
                RAISE EXCEPTION USING ERRCODE = 'HR001', MESSAGE = message;
            END IF;
            RETURN true;
        END
        $$
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS herald_check(boolean, text)")

"""Flavors per project: flavors keyed by (project, name); flavor_pools.

Until 0005 a flavor's name was global (its ``project`` column only filtered
the listing) and a pool named its one flavor in ``pools.flavor``, so any
project could read, change, delete or place queues on any flavor by name
(``herald.storage.pools`` says what is global and what is per project now).
Here:

* ``flavor_pools`` (project, pool) -> flavor: which pools each project's
  flavors have. Each ``pools.flavor`` becomes a row for the project of the
  flavor of that name (names were unique, so there is one); a pool naming
  a flavor that does not exist had no effect on placement and is dropped;
* ``pools.flavor`` is dropped;
* ``flavors`` gets the primary key (project, name). Changing a primary key
  in place needs dialect-specific steps (SQLite cannot); a new table, the
  rows copied, then renamed, works on both.

Downgrade keeps, for each name, the oldest flavor, and gives each pool one
of its flavors back: two projects' flavors of one name cannot both survive.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)


def _rename_pkey(table: str, old: str) -> None:
    # PostgreSQL names the key after the table it was created on; keep the
    # name it would have had (SQLite's keys have no names).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {old}_pkey RENAME TO {table}_pkey")


def upgrade() -> None:
    op.create_table(
        "flavor_pools",
        sa.Column("project", sa.String(300), primary_key=True),
        sa.Column("pool", sa.String(64), primary_key=True),
        sa.Column("flavor", sa.String(255), nullable=False),
    )
    op.create_index("ix_flavor_pools_flavor", "flavor_pools", ["project", "flavor"])
    op.create_index("ix_flavor_pools_pool", "flavor_pools", ["pool"])
    op.execute("INSERT INTO flavor_pools (project, pool, flavor) "
               "SELECT f.project, p.name, p.flavor FROM pools p "
               "JOIN flavors f ON f.name = p.flavor")
    with op.batch_alter_table("pools") as batch:
        batch.drop_column("flavor")

    op.create_table(
        "flavors_new",
        sa.Column("project", sa.String(300), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("capabilities", sa.Text, nullable=False),
        sa.Column("created", _TIME, nullable=False),
    )
    op.execute("INSERT INTO flavors_new (project, name, capabilities, created) "
               "SELECT project, name, capabilities, created FROM flavors")
    op.drop_table("flavors")
    op.rename_table("flavors_new", "flavors")
    _rename_pkey("flavors", "flavors_new")


def downgrade() -> None:
    op.create_table(
        "flavors_old",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("project", sa.String(300), nullable=False),
        sa.Column("capabilities", sa.Text, nullable=False),
        sa.Column("created", _TIME, nullable=False),
    )
    op.execute("INSERT INTO flavors_old (name, project, capabilities, created) "
               "SELECT f.name, f.project, f.capabilities, f.created FROM flavors f "
               "WHERE NOT EXISTS (SELECT 1 FROM flavors g WHERE g.name = f.name AND "
               "(g.created < f.created OR (g.created = f.created AND g.project < f.project)))")
    op.drop_table("flavors")
    op.rename_table("flavors_old", "flavors")
    _rename_pkey("flavors", "flavors_old")

    with op.batch_alter_table("pools") as batch:
        batch.add_column(sa.Column("flavor", sa.String(255), nullable=True))
    op.execute("UPDATE pools SET flavor = (SELECT min(fp.flavor) FROM flavor_pools fp "
               "JOIN flavors f ON f.project = fp.project AND f.name = fp.flavor "
               "WHERE fp.pool = pools.name)")
    op.drop_index("ix_flavor_pools_pool", "flavor_pools")
    op.drop_index("ix_flavor_pools_flavor", "flavor_pools")
    op.drop_table("flavor_pools")

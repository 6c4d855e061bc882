"""Alembic environment: runs migrations on the connection given by ``upgrade``.

Only online mode on a caller-provided connection is supported (offline SQL
generation is not part of the product). SQLite needs batch mode to alter tables.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - misuse, not a runtime path
    raise RuntimeError("use herald.storage.migrations.upgrade(url) to run migrations")

context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

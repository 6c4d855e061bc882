"""Alembic migrations of the storage database, configured in code.

``upgrade(url)`` brings a database (SQLite or PostgreSQL) to the latest
revision; ``herald db upgrade`` and storage workers started with
``[storage] migrate_on_start`` call it (workers under a cluster-wide tooz
lock). No alembic.ini is needed: the script location is this package's
directory. Revisions live in ``versions/`` and must never import
``herald.storage.schema`` (history is frozen; the schema module moves on).
"""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

_HERE = os.path.dirname(os.path.abspath(__file__))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", _HERE)
    # '%' would be taken for interpolation by configparser.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on the database at ``url``."""
    from herald.storage import engine as engine_mod

    engine = engine_mod.make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()

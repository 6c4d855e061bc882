"""Alembic migrations of the storage database, configured in code.

``upgrade(url)`` brings a database (SQLite or PostgreSQL) to the latest
revision; ``herald db upgrade`` and storage workers started with
``[storage] migrate_on_start`` call it (workers under a cluster-wide tooz
lock). No alembic.ini is needed: the script location is this package's
directory. Revisions live in ``versions/`` and must never import
``herald.storage.schema`` (history is frozen; the schema module moves on).

A PostgreSQL database that is not UTF-8 (``SQL_ASCII``, a ``LATIN1``
template) is refused before anything runs (``UnsupportedDatabase``, naming
the encoding and the fix): drivers return its text as bytes, which
SQLAlchemy cannot read, and message bodies could not be stored as sent.
"""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

_HERE = os.path.dirname(os.path.abspath(__file__))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", _HERE)
    # '%' would be taken for interpolation by configparser.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class UnsupportedDatabase(Exception):
    """The database cannot hold Herald's data; the message says why and the fix."""


def check_encoding(url: str) -> None:
    """Raise ``UnsupportedDatabase`` unless a PostgreSQL database at ``url`` is UTF-8.

    Asked through psycopg itself: SQLAlchemy's first connection to a
    ``SQL_ASCII`` database fails inside its own start-up queries
    (``TypeError: cannot use a string pattern on a bytes-like object``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    import psycopg

    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, connect_timeout=10) as connection:
        value = connection.execute("SHOW server_encoding").fetchone()
    encoding = value[0] if value else ""
    if isinstance(encoding, bytes):
        encoding = encoding.decode("ascii", "replace")
    if str(encoding).upper().replace("-", "") != "UTF8":
        name = parsed.database or "?"
        raise UnsupportedDatabase(
            f"PostgreSQL database {name!r} uses the {encoding} encoding; Herald needs UTF8. "
            f"Create it as UTF-8, e.g. createdb --encoding=UTF8 --template=template0 {name} "
            f"(or CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0), "
            "then run herald db upgrade again.")


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on the database at ``url``."""
    from herald.storage import engine as engine_mod

    check_encoding(url)
    engine = engine_mod.make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()

"""``herald db upgrade`` refuses a PostgreSQL database that is not UTF-8 (issue 25).

A database created with ``SQL_ASCII`` made the upgrade crash deep inside
SQLAlchemy (``TypeError: cannot use a string pattern on a bytes-like
object``). Through the real command line, on the machine's PostgreSQL: the
command must stop with a sentence naming the encoding and the fix, create no
table, and a UTF-8 database must still upgrade.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import PG_ADMIN_DSN


@pytest.fixture
def ascii_database() -> Iterator[str]:
    name = f"herald_test_ascii_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" ENCODING \'SQL_ASCII\' TEMPLATE template0 '
                     "LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _db_upgrade(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OS_STORAGE__CONNECTION": url}
    return subprocess.run([sys.executable, "-m", "herald.cli.main", "db", "upgrade"],
                          env=env, capture_output=True, text=True, timeout=120)


def _tables(name: str) -> list[str]:
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in rows]


def test_a_sql_ascii_database_is_refused_with_the_fix(ascii_database: str) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{ascii_database}"
    done = _db_upgrade(url)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "SQL_ASCII" in output and "UTF8" in output, output
    assert f"createdb --encoding=UTF8 --template=template0 {ascii_database}" in output
    assert "Traceback" not in output and "TypeError" not in output, output
    assert _tables(ascii_database) == []


def test_a_utf8_database_upgrades(postgres_url: str) -> None:
    done = _db_upgrade(postgres_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "latest schema revision" in done.stdout + done.stderr

"""Fixtures shared by every test level: the machine's PostgreSQL, RabbitMQ and Redis.

Each test run gets its own PostgreSQL database, RPC topic and tooz namespace,
so runs (and leftover processes of earlier runs) never see each other's data.
These services are expected to be running (``.ci/run`` starts them); a test
that needs one fails, rather than skips, when it is down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.webhook_receiver import WebhookReceiver

PG_ADMIN_DSN = os.environ.get("HERALD_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_URL = os.environ.get("HERALD_TEST_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS", "redis://127.0.0.1:6379")


def _create_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_postgres_url() -> Iterator:
    """Factory of fresh, empty PostgreSQL databases (dropped after the test)."""
    created: list[str] = []

    def make() -> str:
        name = f"herald_test_{uuid.uuid4().hex[:12]}"
        _create_database(name)
        created.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

    yield make
    for name in created:
        _drop_database(name)


@pytest.fixture
def postgres_url(make_postgres_url) -> str:
    return make_postgres_url()


@pytest.fixture
def rabbit_url() -> str:
    return RABBIT_URL


@pytest.fixture
def rpc_topic() -> str:
    """A topic no other test run listens on."""
    return f"herald-storage-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_coordination_url() -> str:
    """A tooz Redis URL in a namespace of its own."""
    return f"{REDIS_URL}?namespace=herald-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A local webhook subscriber (200 on /ok, 500 elsewhere)."""
    r = WebhookReceiver()
    yield r
    r.close()

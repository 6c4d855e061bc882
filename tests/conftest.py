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


# ---------------------------------------------------------------------------
# Checkout boundary (issue 28): a fresh clone's `make test` must pass on its
# own, so no test may read or write outside the checkout (temporary
# directories, the venv, the Python installation and the system's own files
# excepted; see tests/checkout_audit.py). The hook is installed at import,
# before any test module is collected, and the session fails at its end if
# anything was recorded: an error in the last test's teardown that lists
# each path and the test that touched it.
# ---------------------------------------------------------------------------
import shutil  # noqa: E402 - this block's imports are kept in it on purpose
import tempfile  # noqa: E402

from tests import checkout_audit  # noqa: E402

checkout_audit.install()

# Libraries cache in the home directory: stevedore (under oslo.messaging and
# tooz) writes its entry point cache to ~/.cache/python-entrypoints, and
# chromium its disk cache to ~/.cache/chromium. XDG_CACHE_HOME sends them, in
# this process and every process the tests start, to a directory of this
# session's own. Set before anything imports stevedore, which reads it once.
_CACHE_HOME = tempfile.mkdtemp(prefix="herald-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
# requests reads ~/.netrc, when there is one, for credentials to send with
# every request: a developer's would change what the tests send. A path
# that does not exist costs requests one stat and no open.
os.environ["NETRC"] = os.path.join(_CACHE_HOME, "no-netrc")


@pytest.fixture(scope="session", autouse=True)
def _no_access_outside_the_checkout() -> Iterator[None]:
    yield
    shutil.rmtree(_CACHE_HOME, ignore_errors=True)
    found = checkout_audit.records()
    assert not found, checkout_audit.report(found)

"""Migration 0010 on SQLite and PostgreSQL: existing webhook subscriptions get a secret.

A database at 0009 holding a webhook subscription and a websocket connection
subscription is upgraded: the webhook one now has a well-formed signing
record of its own (so its deliveries are signed from the upgrade on), the
connection one none (its pushes are no webhooks); the downgrade drops the
column again.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from herald.common import webhook_signing
from herald.storage import migrations
from herald.storage.engine import make_engine
from tests.contract.test_pools import migrations_downgrade

_INSERT = sa.text(
    "INSERT INTO subscriptions (id, project, queue, subscriber, kind, ttl, options, "
    "confirmed, created, expires, delivery_attempts, deliveries, delivery_failures) "
    "VALUES (:id, 'p', 'q', :subscriber, :kind, 600, '{}', false, 1.0, 9e9, 0, 0, 0)")


def test_migration_0010_gives_webhook_subscriptions_a_secret(database_url: str) -> None:
    migrations.upgrade(database_url, "0009")
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            for sid, subscriber, kind in (("a" * 32, "http://h/1", "uri"),
                                          ("b" * 32, "http://h/2", "uri"),
                                          ("c" * 32, "http://herald-ws.invalid/g/c", "websocket")):
                conn.execute(_INSERT, {"id": sid, "subscriber": subscriber, "kind": kind})
        migrations.upgrade(database_url)
        with engine.begin() as conn:
            rows = dict(conn.execute(sa.text(
                "SELECT id, signing FROM subscriptions ORDER BY id")).all())
        assert rows["c" * 32] is None
        secrets = [json.loads(rows[sid])["secret"] for sid in ("a" * 32, "b" * 32)]
        assert len(set(secrets)) == 2
        for secret in secrets:
            assert len(webhook_signing.key_bytes(secret)) == 32
        migrations_downgrade(database_url, "0009")
        with engine.begin() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("subscriptions")}
        assert "signing" not in columns
    finally:
        engine.dispose()

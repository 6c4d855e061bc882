"""Contract: after this process changed a queue's subscriptions, its
recipients are read again off the posts' path (``herald.storage.recipient_warmer``),
so the next post finds them remembered; nothing it leaves is ever used
once the subscriptions changed again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from herald.storage import recipient_warmer
from herald.storage.engine import Database
from herald.testing.polling import wait_until

from .test_recipient_cache import Notified, connection, hook


@pytest.fixture
def warmer(database: Database, conf: Any) -> Iterator[recipient_warmer.RecipientWarmer]:
    database.wiring.warmer.start(conf)
    yield database.wiring.warmer
    database.wiring.warmer.stop()


@pytest.fixture
def notified(database: Database, monkeypatch: pytest.MonkeyPatch) -> Notified:
    return Notified(database, monkeypatch)


def remembered(database: Database, project: str, queue: str = "q") -> Any:
    return database.wiring.recipients.of(database.engine).get((project, queue, False))


def sneak(database: Database) -> None:
    """Change the webhook ``http://h/a`` behind the workers' back (no version
    bump): only a post that reads the subscriptions sees it."""
    with database.engine.begin() as conn:
        conn.execute(sa.text("UPDATE subscriptions SET subscriber = 'http://h/sneaky'"
                             " WHERE subscriber = 'http://h/a'"))


def test_a_burst_of_changes_is_read_once_and_the_next_post_reads_nothing(
        endpoint, ctxt, database, warmer, notified) -> None:
    for name in ("c1", "c2", "c3"):
        endpoint.subscription_create(ctxt, queue="q", subscriber=None,
                                     connection=connection(name))
    hook(endpoint, ctxt, "a")
    wait_until(lambda: remembered(database, ctxt.project_id) is not None, 10,
               what="the queue's recipients read again")
    assert warmer.refreshed == 1  # one read for the burst
    sneak(database)
    # The post used what was read for it: not the rows as they are now.
    assert notified.post(endpoint, ctxt) == {"http://h/a", "gw.1.abc/c1", "gw.1.abc/c2",
                                             "gw.1.abc/c3"}


def test_what_was_read_is_not_used_once_the_subscriptions_changed_again(
        endpoint, ctxt, database, warmer, notified) -> None:
    hook(endpoint, ctxt, "a")
    wait_until(lambda: warmer.refreshed == 1, 10, what="the first read")
    warmer.stop()  # nothing reads them again now
    hook(endpoint, ctxt, "b")
    assert notified.post(endpoint, ctxt) == {"http://h/a", "http://h/b"}


def test_without_a_running_warmer_nothing_is_read_before_a_post(
        endpoint, ctxt, database) -> None:
    hook(endpoint, ctxt, "a")
    time.sleep(3 * recipient_warmer.QUIET_SECONDS)
    assert remembered(database, ctxt.project_id) is None

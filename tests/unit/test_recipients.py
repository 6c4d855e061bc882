"""herald.storage.recipients: a worker's bounded memory of queue recipients.

Correctness against the database (versions, expiry, other workers) is the
contract suite's (tests/contract/test_recipient_cache.py); here the memory
itself: when an entry may be used, its bounds, one memory per database.
"""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

import pytest

from herald.common.subscriptions import ws_subscriber_uri
from herald.storage import recipients
from herald.storage.recipients import RecipientCache, of_rows


class Engine:
    """Stands for a SQLAlchemy engine: the memory's key, held weakly."""


def row(expires: float, connection: str | None = None, gateway: str = "gw",
        options: str = "{}") -> Any:
    if connection is None:
        return SimpleNamespace(id="h", kind="uri", subscriber="http://h/x", options=options,
                               signing=None, expires=expires)
    return SimpleNamespace(id=connection, kind="websocket", options=options, signing=None,
                           subscriber=ws_subscriber_uri(gateway, connection), expires=expires)


def test_an_entry_is_used_from_its_read_until_the_first_expiry_or_max_age() -> None:
    entry = of_rows(3, 1000.0, [row(1030.0), row(1010.0, "c1")])
    assert entry.version == 3 and entry.live_until == 1010.0
    assert entry.usable(1000.0) and entry.usable(1009.9)
    assert not entry.usable(1010.0)  # a subscription expires at 1010: re-read
    assert not entry.usable(999.0)  # the clock went back: re-read
    forever = of_rows(3, 1000.0, [row(1e12)])
    assert not forever.usable(1000.0 + recipients.MAX_AGE_SECONDS)
    empty = of_rows(0, 1000.0, [])
    assert not empty and empty.usable(1000.0 + recipients.MAX_AGE_SECONDS - 1)


def test_websocket_subscribers_are_grouped_per_gateway_and_policy() -> None:
    policy = '{"filter": {"a": [1]}}'
    entry = of_rows(1, 0.0, [row(9.0, "c1"), row(9.0, "c2", gateway="other"),
                             row(9.0, "c3", options=policy), row(9.0, "c4"), row(9.0)])
    assert [(g.gateway_id, g.policy is not None, g.connections, g.positions)
            for g in entry.websocket] == [("gw", False, ["c1", "c4"], (0, 3)),
                                          ("other", False, ["c2"], (1,)),
                                          ("gw", True, ["c3"], (2,))]
    assert [r.subscriber for r in entry.durable] == ["http://h/x"]


def test_a_memory_starts_over_past_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipients, "RECIPIENTS_MAX", 2)
    monkeypatch.setattr(recipients, "SUBSCRIPTIONS_MAX", 5)
    known = RecipientCache().of(Engine())
    small = of_rows(1, 0.0, [row(9.0)])
    known.remember(("p", "a", False), small)
    known.remember(("p", "b", False), small)
    known.remember(("p", "b", False), small)  # replacing is no new queue
    assert known.get(("p", "a", False)) is small
    known.remember(("p", "c", False), small)
    assert known.get(("p", "a", False)) is None and known.get(("p", "c", False)) is small
    known.remember(("p", "d", False), of_rows(1, 0.0, [row(9.0)] * 5))
    assert known.get(("p", "c", False)) is None  # six subscriptions held: over


def test_each_database_has_its_own_memory_which_goes_with_its_engine() -> None:
    cache = RecipientCache()
    one, two = Engine(), Engine()
    assert cache.of(one) is cache.of(one)
    assert cache.of(one) is not cache.of(two)
    cache.of(two).remember(("p", "q", False), of_rows(1, 0.0, []))
    del two
    gc.collect()
    assert len(cache._databases) == 1

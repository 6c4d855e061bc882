"""herald.storage.post_caches: bounded guesses that a statement checks later."""

from __future__ import annotations

import pytest

from herald.storage import post_caches
from herald.storage.post_caches import QueueMetadataCache, StageWorkCache


def test_metadata_is_remembered_and_forgotten() -> None:
    cache = QueueMetadataCache()
    cache.remember({("p", "a"): {"_default_message_ttl": 60}, ("p", "b"): {}})
    assert cache.get(("p", "a")) == {"_default_message_ttl": 60}
    cache.remember({}, gone=[("p", "a")])
    assert cache.get(("p", "a")) is None
    assert cache.get(("p", "b")) == {}


def test_metadata_starts_over_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(post_caches, "KNOWN_METADATA_MAX", 3)
    cache = QueueMetadataCache()
    cache.remember({("p", str(i)): {} for i in range(3)})
    cache.remember({("p", "new"): {}})
    assert cache.get(("p", "0")) is None
    assert cache.get(("p", "new")) == {}


def test_stage_work_lasts_stage_work_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(post_caches.time, "monotonic", lambda: now[0])
    cache = StageWorkCache()
    assert not cache.may_write([("p", "q")])
    cache.remember([("p", "q")])
    assert cache.may_write([("p", "other"), ("p", "q")])
    now[0] += post_caches.STAGE_WORK_SECONDS + 1
    assert not cache.may_write([("p", "q")])

"""``FakeClock``: the storage workers' time, moved by the test instead of slept through.

Every storage controller reads the time through ``herald.storage.clock.now``
(one function, on purpose). Replacing it with a ``FakeClock`` lets a test
expire a claim or a message by calling ``advance()``. Only the storage
worker's time moves: it affects workers running in the test's process (the
embedded stack, the contract suite), never a topology's subprocesses.

Thread-safety: reads and ``advance()`` are single float operations, safe
from any thread (storage calls run on the in-process caller's threads).
This module must not sleep or patch anything but ``clock.now``.
"""

from __future__ import annotations

from typing import Any, Protocol


class _SetAttr(Protocol):
    """What ``install`` needs: pytest's ``monkeypatch`` (it undoes the patch)."""

    def setattr(self, target: Any, name: str, value: Any) -> None: ...


class FakeClock:
    """A callable returning epoch seconds that only move on ``advance()``."""

    def __init__(self, start: float) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


def install(patcher: _SetAttr) -> FakeClock:
    """Replace ``herald.storage.clock.now`` with a ``FakeClock`` starting now.

    ``patcher`` owns the undo (pytest's ``monkeypatch`` restores the real
    clock at the end of the test).
    """
    from herald.storage import clock as storage_clock

    fake = FakeClock(storage_clock.now())
    patcher.setattr(storage_clock, "now", fake)
    return fake

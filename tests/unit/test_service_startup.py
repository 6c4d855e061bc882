"""What every service does once it is up (herald.cli.main._wait_for_signal)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

import pytest

from herald.cli import main


def test_the_startup_heap_is_frozen_before_the_service_says_ready(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Full garbage collections must not walk the start-up heap (70-200 ms
    pauses at 200 posts/s): it is frozen by the time systemd hears READY."""
    frozen_at_ready: list[int] = []

    def notify(state: str) -> None:
        if state == "READY=1":
            frozen_at_ready.append(gc.get_freeze_count())
            # Stop the service the way systemd or docker would.
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(main.health, "sd_notify", notify)
    gc.unfreeze()
    try:
        asyncio.run(asyncio.wait_for(main._wait_for_signal(), 10))
    finally:
        gc.unfreeze()  # give this test process's heap back to the collector
    assert frozen_at_ready and frozen_at_ready[0] > 0

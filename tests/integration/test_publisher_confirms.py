"""Integration: ``[rpc] publisher_confirms`` decides how RPC publishes go.

An oslo.messaging RPC server and an ``OsloCaller`` on the machine's RabbitMQ,
in this process, after ``compat.publisher_confirms()`` as every Herald service
runs it at start. Calls must be answered either way; every AMQP connection
the two opened must be in confirm mode exactly when confirms are on, and a
channel that published must have waited for confirms only then.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import pytest

from herald.common.rpc import compat
from herald.common.rpc.caller import OsloCaller

pytestmark = [pytest.mark.rabbit]


@pytest.fixture
def restore_kombu() -> Iterator[None]:
    yield
    compat.publisher_confirms(True)  # kombu's own, as the rest of the session expects


def _connections() -> list[amqp.Connection]:
    return [o for o in gc.get_objects() if isinstance(o, amqp.Connection)]


@pytest.fixture
def no_worker_watch(rpc_conf: Any) -> Iterator[None]:
    """The caller's worker watch (``resend.WorkerWatch``) has a plain kombu
    connection of its own that never publishes, so has no confirms to wait
    for: left out here, which is about oslo.messaging's connections."""
    rpc_conf.set_override("worker_check_interval", 0, group="rpc")
    yield
    rpc_conf.clear_override("worker_check_interval", group="rpc")


@pytest.mark.parametrize("enabled", [False, True])
def test_rpc_connections_confirm_publishes_only_when_configured(
        no_worker_watch: None, pinged_caller: Callable[[], OsloCaller], enabled: bool,
        restore_kombu: None) -> None:
    before = {id(c) for c in _connections()}
    compat.publisher_confirms(enabled)
    pinged_caller()
    opened = [c for c in _connections() if id(c) not in before and c.connected]
    # The caller's (publish, reply queue) and the server's (listen, reply).
    assert len(opened) >= 2
    assert {c.confirm_publish for c in opened} == {enabled}
    published = [ch for c in opened for ch in c.channels.values()
                 if isinstance(ch, amqp.Channel) and ch._confirm_selected]
    assert bool(published) is enabled

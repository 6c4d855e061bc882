"""Herald's default for oslo.messaging's RabbitMQ heartbeat threshold.

Found by the silent broker outage (tests/faults/test_broker.py): with
oslo.messaging's 60 s default, a storage worker's RPC consumer sat on a dead
connection long after the broker was back; 10 s lets it notice in time.
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_messaging._drivers import impl_rabbit

from herald.common import config


def test_rabbit_heartbeat_threshold_defaults_to_10_seconds() -> None:
    config.load([], conf=cfg.ConfigOpts())
    threshold = next(o for o in impl_rabbit.rabbit_opts
                     if o.name == "heartbeat_timeout_threshold")
    assert threshold.default == config.RABBIT_HEARTBEAT_TIMEOUT == 10


def test_replies_go_without_the_mandatory_flag() -> None:
    # Without publisher confirms a returned reply would raise in whatever
    # thread next reads that connection (herald.common.rpc.publisher_confirms).
    config.load([], conf=cfg.ConfigOpts())
    flag = next(o for o in impl_rabbit.rabbit_opts if o.name == "direct_mandatory_flag")
    assert flag.default is False

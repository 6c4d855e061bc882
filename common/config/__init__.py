"""Herald's configuration: one module per option group, as in Zaqar.

Every option is registered on oslo.config's global ``cfg.CONF``: oslo.messaging
registers its own options there and breaks with a private ``ConfigOpts``.
Options can be set in ``herald.conf`` or through environment variables named
``OS_<GROUP>__<OPTION>`` (oslo.config reads them itself), e.g.
``OS_STORAGE__CONNECTION``.

``list_opts()`` feeds ``oslo-config-generator`` (namespace ``herald``); the
generated sample is ``etc/herald.conf.sample``.
"""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg

from herald.common.config import (
    api,
    coordination,
    default,
    limits,
    notification,
    rpc,
    signed_url,
    storage,
    ws_gateway,
)

CONF = cfg.CONF

_GROUP_MODULES = (default, api, ws_gateway, storage, coordination, limits, rpc, notification,
                  signed_url)


def register_opts(conf: cfg.ConfigOpts = CONF) -> None:
    """Register every Herald option group on ``conf`` (idempotent)."""
    for module in _GROUP_MODULES:
        module.register_opts(conf)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Return ``(group, options)`` pairs for the sample config generator."""
    pairs = []
    for module in _GROUP_MODULES:
        opts = default.list_with_transport() if module is default else list(module.ALL_OPTS)
        pairs.append((module.GROUP, opts))
    return pairs


# oslo.messaging notices a RabbitMQ host that vanished without a word (no
# FIN, no RST: a dead host, a dropped route) only through AMQP heartbeats.
# With its default threshold (60 s) a waiting consumer -- a storage worker's
# RPC server -- sat on a dead connection for up to a minute after the broker
# was back (tests/faults/test_broker.py, silent outage). Operators can still
# set [oslo_messaging_rabbit] heartbeat_timeout_threshold themselves.
RABBIT_HEARTBEAT_TIMEOUT = 10


def _messaging_defaults() -> None:
    # The driver's own option objects: the copies list_opts() returns would
    # not change what the driver registers.
    from oslo_messaging._drivers import impl_rabbit

    # Replies go without the mandatory flag: with publisher confirms off
    # ([rpc] publisher_confirms), a reply the broker returned for a caller
    # that is gone would raise in whichever thread next read the connection;
    # without the flag the broker drops it, which is all a returned reply
    # could lead to anyway.
    cfg.set_defaults(impl_rabbit.rabbit_opts,
                     heartbeat_timeout_threshold=RABBIT_HEARTBEAT_TIMEOUT,
                     direct_mandatory_flag=False)


def load(argv: Sequence[str] | None = None, default_config_files: Sequence[str] | None = None,
         conf: cfg.ConfigOpts = CONF) -> cfg.ConfigOpts:
    """Register options and parse the command line and config files."""
    register_opts(conf)
    _messaging_defaults()
    conf(
        list(argv or []),
        project="herald",
        prog="herald",
        default_config_files=list(default_config_files) if default_config_files else None,
    )
    return conf

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
    metrics,
    notification,
    rpc,
    signed_url,
    storage,
    ws_gateway,
)
from herald.common.rpc import compat

CONF = cfg.CONF

_GROUP_MODULES = (default, api, ws_gateway, storage, coordination, limits, rpc, notification,
                  signed_url, metrics)


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


# Kept here for the callers that read it from the configuration package; the
# default is set, with the other oslo.messaging patches, in herald.common.rpc.compat.
RABBIT_HEARTBEAT_TIMEOUT = compat.RABBIT_HEARTBEAT_TIMEOUT


def load(argv: Sequence[str] | None = None, default_config_files: Sequence[str] | None = None,
         conf: cfg.ConfigOpts = CONF) -> cfg.ConfigOpts:
    """Register options and parse the command line and config files."""
    register_opts(conf)
    compat.messaging_defaults()
    conf(
        list(argv or []),
        project="herald",
        prog="herald",
        default_config_files=list(default_config_files) if default_config_files else None,
    )
    return conf

"""Options of the ``[DEFAULT]`` group that Herald itself defines.

``transport_url`` (the RabbitMQ URL) is oslo.messaging's own option; it is
listed here too so that the sample config shows it.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "DEFAULT"

ALL_OPTS = [
    cfg.BoolOpt(
        "admin_mode",
        default=False,
        help="Serve the operator endpoints (GET /v2/health, and with pooling the "
        "pools and flavors API). Possible values: true, false.",
    ),
    cfg.BoolOpt(
        "pooling",
        default=False,
        help="Serve the pools and flavors API (with admin_mode): pools are extra "
        "databases that queues created with a flavor live in. Possible values: true, "
        "false.",
    ),
    cfg.StrOpt(
        "auth_strategy",
        default="",
        choices=[("", "no authentication: the project is the X-Project-ID header and "
                      "roles the X-Roles header"),
                 ("keystone", "Keystone tokens validated by keystonemiddleware's "
                              "auth_token, configured in [keystone_authtoken]")],
        help="How REST requests and the websocket authenticate action are "
        "authenticated. Possible values: \"\" (empty: no authentication, the "
        "default), keystone.",
    ),
    cfg.BoolOpt(
        "enable_checksum",
        default=False,
        help='Store an "MD5:<hex>" checksum of every posted message body and '
        "show it on message objects. Possible values: true, false.",
    ),
    cfg.StrOpt(
        "log_format",
        default="text",
        choices=[("text", "one human readable line per event"),
                 ("json", "one JSON object per line, for log shippers")],
        help="Format of the log lines written to stdout. Possible values: text, json.",
    ),
]


def _transport_url_opt() -> cfg.Opt:
    # oslo.messaging owns the option; we re-use its object so that the
    # sample config documents it without registering a second definition.
    from oslo_messaging import transport

    for opt in transport._transport_opts:
        if opt.dest == "transport_url":
            return opt
    raise LookupError("oslo.messaging no longer defines transport_url")


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS)
    # Registered by oslo.messaging only when a transport is built; tests and
    # tools need to set it before that.
    conf.register_opt(_transport_url_opt())


def list_with_transport() -> list[cfg.Opt]:
    return [*ALL_OPTS, _transport_url_opt()]

"""Options of the ``[DEFAULT]`` group that Herald itself defines.

``transport_url`` (the RabbitMQ URL) is oslo.messaging's own option; it is
listed here too so that the sample config shows it. So is
``executor_thread_pool_size`` (the threads a storage worker runs RPC calls
on), whose default Herald lowers to ``EXECUTOR_THREADS``: with coalescing one
thread carries a whole batch, and each thread needs a database connection
(``[storage] pool_size`` follows it), which a 2-core PostgreSQL does not
serve faster beyond a few dozen.
"""

from __future__ import annotations

import copy

from oslo_config import cfg

GROUP = "DEFAULT"

#: Herald's default for oslo.messaging's ``executor_thread_pool_size`` (64).
EXECUTOR_THREADS = 16

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


def _executor_threads_opt() -> cfg.Opt:
    # oslo.messaging's own object: registering a copy would clash with it.
    from oslo_messaging import server

    for opt in server._pool_opts:
        if opt.dest == "executor_thread_pool_size":
            return opt
    raise LookupError("oslo.messaging no longer defines executor_thread_pool_size")


def _executor_threads_sample_opt() -> cfg.Opt:
    # What the sample config shows: Herald's default and what it implies.
    opt = copy.deepcopy(_executor_threads_opt())
    opt.default = EXECUTOR_THREADS
    opt.help = (
        "Threads a storage worker runs RPC calls on (oslo.messaging's option; "
        f"Herald's default is {EXECUTOR_THREADS}, oslo.messaging's 64). Each runs one "
        "call, a coalesced batch included, and holds one database connection "
        "meanwhile: [storage] pool_size follows this value unless set. "
        "Possible values: an integer >= 1.")
    return opt


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS)
    # Registered by oslo.messaging only when a transport is built; tests and
    # tools need to set it before that.
    conf.register_opt(_transport_url_opt())
    conf.register_opt(_executor_threads_opt())
    conf.set_default("executor_thread_pool_size", EXECUTOR_THREADS)


def list_with_transport() -> list[cfg.Opt]:
    return [*ALL_OPTS, _transport_url_opt(), _executor_threads_sample_opt()]

"""Options of the ``[metrics]`` group: the Prometheus operator listener and its queue series.

Every Herald process (``herald api``, ``storage``, ``ws-gateway``, ``run``)
serves ``GET /metrics`` on this listener, never on its public port: queue
names and project ids are for the operator's scraper, not for API clients.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "metrics"

ALL_OPTS = [
    cfg.HostAddressOpt(
        "bind",
        default="127.0.0.1",
        help="Address of the process's metrics listener (GET /metrics, Prometheus "
        "text format). Possible values: an IPv4 or IPv6 address or a host name; "
        "0.0.0.0 listens on every interface (in a container, for a scraper outside "
        "it). Keep it off the public network: the series name queues and projects.",
    ),
    cfg.PortOpt(
        "port",
        default=9464,
        help="TCP port of the metrics listener. herald run has one listener for the "
        "whole process; run several Herald processes on one machine with a port "
        "each. Possible values: 0 (no listener: metrics are off) or a port 1 to "
        "65535.",
    ),
    cfg.IntOpt(
        "max_queue_series",
        default=100,
        min=0,
        help="How many queues, the deepest ones (most messages), get their own "
        "herald_queue_messages and herald_queue_oldest_message_age_seconds series; "
        "every queue counts in its project's herald_project_* totals. Bounds the "
        "number of series a scrape returns. Possible values: an integer >= 0 "
        "(0: per-project totals only).",
    ),
    cfg.FloatOpt(
        "backlog_interval",
        default=15.0,
        min=1.0,
        help="Seconds between two computations of the queue and outbox backlog "
        "gauges by each storage worker (one grouped query per database; each "
        "worker reports the queues it owns in the tooz partition). A scrape only "
        "reads the last result. Possible values: a number >= 1.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

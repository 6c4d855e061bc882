"""Options of the ``[coordination]`` group: tooz membership, partitions and locks."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "coordination"

ALL_OPTS = [
    cfg.StrOpt(
        "backend_url",
        default="file://data/coordination",
        help="tooz backend URL. Possible values: redis://host:port (production), "
        "file://path (embedded mode, one machine only), or any other tooz "
        "backend URL that supports groups and locks.",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=1.0,
        min=0.1,
        help="Seconds between the background jobs' checks of group membership "
        "(tooz run_watchers), which is how the partition ring follows workers "
        "coming and going. Possible values: a number >= 0.1.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

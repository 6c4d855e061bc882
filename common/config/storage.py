"""Options of the ``[storage]`` group: the storage workers and their database."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "storage"

ALL_OPTS = [
    cfg.StrOpt(
        "connection",
        default="sqlite:///data/herald.sqlite",
        help="SQLAlchemy URL of the database. Possible values: "
        "postgresql+psycopg://user:password@host:port/dbname (production) or "
        "sqlite:///path/to/file.sqlite (embedded mode; relative to the working "
        "directory).",
    ),
    cfg.IntOpt(
        "pool_size",
        default=0,
        min=0,
        help="Database connections each worker keeps open, one per thread that "
        "runs storage calls; a few more (max(4, pool_size / 4)) may be opened for "
        "the worker's own background threads. Possible values: 0 (the default: "
        "[DEFAULT] executor_thread_pool_size, the worker's RPC executor threads, "
        "16 by default; in embedded mode [rpc] client_threads, 32 by default) or "
        "an integer >= 1.",
    ),
    cfg.IntOpt(
        "gc_interval",
        default=30,
        min=1,
        help="Seconds between two runs of the background job that deletes "
        "expired messages and claims. Possible values: an integer >= 1.",
    ),
    cfg.IntOpt(
        "analyze_interval",
        default=10,
        min=0,
        help="Seconds between two checks, by the storage workers, of the "
        "PostgreSQL planner statistics of the hot tables: a table whose rows "
        "changed by more than 500 and 20 % since its last ANALYZE is analyzed "
        "again (by one worker at a time), so that statements keep their index "
        "plans while queues grow faster than autovacuum notices, or where "
        "autovacuum is off. Possible values: 0 (never; leave it to autovacuum) "
        "or an integer >= 1. Ignored on SQLite.",
    ),
    cfg.FloatOpt(
        "redrive_stale_after",
        default=10.0,
        min=2.0,
        help="Seconds after which a dead-letter redrive task whose worker "
        "stopped refreshing it (the worker was killed or hangs) is adopted by "
        "another storage worker, which carries on where it stopped; a running "
        "task is refreshed with every batch it moves, at least once a second. "
        "Possible values: a number >= 2.",
    ),
    cfg.BoolOpt(
        "migrate_on_start",
        default=True,
        help="Run the database migrations (under a cluster-wide tooz lock) when a "
        "storage worker starts. Possible values: true, false (then run "
        "'herald db upgrade' yourself before starting workers).",
    ),
    cfg.HostAddressOpt(
        "health_bind",
        default="127.0.0.1",
        help="Address of the storage worker's health listener (see health_port). "
        "Possible values: an IPv4 or IPv6 address or a host name; 0.0.0.0 listens "
        "on every interface (in a container, for probes from outside it).",
    ),
    cfg.PortOpt(
        "health_port",
        default=0,
        help="TCP port of the storage worker's health listener: GET /healthz "
        "answers 200 while the process runs, GET /readyz 200 while the worker "
        "reaches its database and answers RPC calls through the broker, else "
        "503. For Docker HEALTHCHECK, systemd and orchestrators. The embedded "
        "mode (herald run) never starts it: its REST API has /healthz and /readyz. "
        "Possible values: 0 (no listener, the default) or a port 1 to 65535.",
    ),
    cfg.ListOpt(
        "message_pipeline",
        default=["notifier"],
        help="Stages run inside the transaction of every message post, after the "
        "messages are inserted. Possible values: a comma-separated list of "
        "stage names; notifier (write one outbox row per message and matching "
        "subscription, delivered afterwards by the dispatchers: webhook, mailto, "
        "websocket); an empty list (subscriptions are kept but nobody is ever "
        "notified).",
    ),
    cfg.IntOpt(
        "idempotency_window",
        default=3600,
        min=1,
        help="Seconds a post's Idempotency-Key (REST header; idempotency_key in a "
        "websocket message_post body) is remembered: a retry with the same key "
        "within this window gets the original message ids back instead of new "
        "messages. Possible values: an integer >= 1.",
    ),
    cfg.IntOpt(
        "delivery_history_retention",
        default=86400,
        min=60,
        help="Seconds the delivery history (claims of each message, push attempts "
        "of each notification) is kept for GET .../messages/<id>/deliveries and "
        "subscription health before the background job deletes it. Possible "
        "values: an integer >= 60.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

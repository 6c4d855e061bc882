"""Options of the ``[notification]`` group: subscriptions and push delivery.

What a storage worker's outbox dispatcher needs to deliver notifications
(notifications.md): whether subscriptions must be confirmed, the SMTP server
for ``mailto:`` subscribers, how often and how concurrently the outbox is
drained, how long one delivery attempt may take, and how long a rotated
webhook signing secret keeps signing. The notifier stage
itself is switched on by ``[storage] message_pipeline``.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "notification"

ALL_OPTS = [
    cfg.ListOpt(
        "subscriber_types",
        default=["http", "https", "mailto", "trust+http", "trust+https"],
        help="URI schemes a subscriber may use (REST and websocket subscription "
        "create/update). Possible values: a comma-separated subset of http, https, "
        "mailto, trust+http, trust+https (trust+ subscribers are posted to without "
        "a Keystone token).",
    ),
    cfg.BoolOpt(
        "require_confirmation",
        default=False,
        help="Notify only subscriptions whose subscriber confirmed them (PUT "
        ".../subscriptions/<id>/confirm). Confirmation messages are sent only when "
        "[signed_url] secret_key is set as well. Possible values: true, false.",
    ),
    cfg.HostAddressOpt(
        "smtp_host",
        default="localhost",
        help="SMTP server that delivers the mails of mailto: subscribers. "
        "Possible values: a host name or an IP address.",
    ),
    cfg.PortOpt(
        "smtp_port",
        default=25,
        help="TCP port of the SMTP server. Possible values: 1 to 65535 (25, 587 "
        "with STARTTLS, ...).",
    ),
    cfg.StrOpt(
        "smtp_sender",
        default="Herald Notifications <no-reply@localhost>",
        help="From address of notification mails when the subscription's "
        "options.from is not set. Possible values: an RFC 5322 address, "
        "optionally with a display name.",
    ),
    cfg.BoolOpt(
        "smtp_starttls",
        default=False,
        help="Upgrade the SMTP connection with STARTTLS before sending. "
        "Possible values: true, false.",
    ),
    cfg.StrOpt(
        "smtp_user",
        help="User name to log in to the SMTP server with. Possible values: unset "
        "(no login) or a user name.",
    ),
    cfg.StrOpt(
        "smtp_password",
        secret=True,
        help="Password of smtp_user. Possible values: any string.",
    ),
    cfg.FloatOpt(
        "dispatch_interval",
        default=0.25,
        min=0.01,
        help="Seconds between two polls of the outbox by each storage worker's "
        "dispatcher (a post handled by the same worker wakes it at once). "
        "Bounds the push latency of posts handled by another worker. Possible "
        "values: a number >= 0.01.",
    ),
    cfg.IntOpt(
        "dispatch_batch_size",
        default=200,
        min=1,
        help="Outbox rows one dispatcher leases per poll. Possible values: an "
        "integer >= 1.",
    ),
    cfg.IntOpt(
        "max_concurrent_deliveries",
        default=32,
        min=1,
        help="Deliveries (HTTP requests, mails, websocket pushes) one storage "
        "worker runs at the same time. Different subscribers are served "
        "concurrently, so a slow one delays no other. Possible values: an "
        "integer >= 1.",
    ),
    cfg.FloatOpt(
        "delivery_timeout",
        default=10.0,
        min=0.1,
        help="Seconds one delivery attempt may take (connect + answer) before it "
        "counts as failed and is retried. Possible values: a number >= 0.1.",
    ),
    cfg.FloatOpt(
        "webhook_idle_timeout",
        default=15.0,
        min=0.0,
        help="Seconds a connection to a webhook subscriber stays open after a "
        "delivery, for the next one (HTTP keep-alive; a subscriber receiving a "
        "stream of notifications then costs no TCP or TLS handshake each). "
        "Possible values: a number > 0, or 0 to close every connection after "
        "its delivery.",
    ),
    cfg.FloatOpt(
        "lease_seconds",
        default=60.0,
        min=1.0,
        help="Seconds a dispatcher holds the outbox rows it took. Rows of a "
        "dispatcher that crashed are retried by another once the lease ends "
        "(at-least-once delivery). Must exceed delivery_timeout. Possible values: "
        "a number >= 1.",
    ),
    cfg.FloatOpt(
        "takeover_after",
        default=30.0,
        min=0.0,
        help="Seconds after which a due outbox row is delivered by any worker, "
        "even one that does not own its queue's partition (covers the time "
        "before the group notices a dead worker). Possible values: a number >= 0.",
    ),
    cfg.FloatOpt(
        "retry_delay_scale",
        default=1.0,
        min=0.0,
        help="Factor applied to every delay of the retry policies "
        "(notifications.md §4). Possible values: 1 (the policy's seconds), a "
        "smaller positive number to retry faster (tests), 0 (no delays).",
    ),
    cfg.FloatOpt(
        "outbox_retention",
        default=3600.0,
        min=0.0,
        help="Seconds delivered outbox rows are kept (for inspection) before the "
        "garbage collector deletes them; failed rows are kept as long as their "
        "subscription. Possible values: a number >= 0.",
    ),
    cfg.FloatOpt(
        "signing_secret_overlap",
        default=86400.0,
        min=0.0,
        help="Seconds a subscription's replaced webhook signing secret keeps "
        "signing after a PATCH rotated it (options.signing_secret): meanwhile "
        "each delivery carries two signatures, the new secret's and the old "
        "one's, space-separated in webhook-signature, so receivers can switch "
        "secrets without refusing a delivery; afterwards only the new secret "
        "signs. The value in force at the PATCH applies. Possible values: a "
        "number >= 0 (0: the old secret stops signing at once; 86400: one day).",
    ),
    cfg.StrOpt(
        "public_endpoint",
        help="Public URL of the REST API (e.g. https://herald.example.com), used "
        "for WSGISubscribeURL in confirmation messages. Possible values: unset "
        "(the key is omitted) or a URL without a trailing slash.",
    ),
    cfg.StrOpt(
        "websocket_public_endpoint",
        help="Public URL of the websocket gateway, used for WebSocketSubscribeURL "
        "in confirmation messages. Possible values: unset (the key is omitted) or "
        "a ws:// or wss:// URL without a trailing slash.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

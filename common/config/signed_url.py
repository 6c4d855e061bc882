"""Options of the ``[signed_url]`` group: the key of pre-signed URLs.

The same key signs the URLs of ``POST .../share`` and the confirmation links
of subscriptions (rest-v2.md §11, notifications.md §6).
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "signed_url"

ALL_OPTS = [
    cfg.StrOpt(
        "secret_key",
        secret=True,
        help="HMAC-SHA256 key of pre-signed URLs and subscription confirmations. "
        "Possible values: unset (pre-signed URLs are refused and no confirmation "
        "message is sent) or any string; keep it secret and equal on every "
        "service of a deployment.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

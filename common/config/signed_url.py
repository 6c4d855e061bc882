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
    cfg.ListOpt(
        "previous_secret_keys",
        default=[],
        secret=True,
        help="Keys that still verify pre-signed URLs and confirmation links but no "
        "longer sign new ones: how secret_key is rotated without breaking the "
        "URLs already handed out (docs/security.md). Possible values: empty (only "
        "secret_key verifies) or a comma-separated list of former keys; drop a key "
        "once the longest-lived URL it signed has expired.",
    ),
]


def verifying_keys(conf: cfg.ConfigOpts) -> list[str]:
    """Every key a pre-signed request may be signed with: the current one first.

    Without a current key nothing verifies: the operator turned signing off."""
    current = conf.signed_url.secret_key
    if not current:
        return []
    return [current, *(key for key in conf.signed_url.previous_secret_keys if key)]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

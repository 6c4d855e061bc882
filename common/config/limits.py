"""Options of the ``[limits]`` group: the defaults and limits the API promises.

Zaqar keeps these under ``[transport]``; their names and defaults are the
same (see the API contract's table of defaults and limits).
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "limits"


def _int(name: str, default: int, help_text: str, minimum: int = 1) -> cfg.IntOpt:
    return cfg.IntOpt(
        name,
        default=default,
        min=minimum,
        help=f"{help_text} Possible values: an integer >= {minimum}.",
    )


ALL_OPTS = [
    _int("default_message_ttl", 3600, "Seconds a message lives when posted without a ttl."),
    _int("default_message_delay", 0,
         "Delay in seconds shown as a queue's _default_message_delay when unset; 0 "
         "means messages are visible at once.", minimum=0),
    _int("default_claim_ttl", 300, "Seconds a claim lasts when created without a ttl."),
    _int("default_claim_grace", 60, "Grace seconds of a claim created without one."),
    _int("default_subscription_ttl", 3600, "Seconds a subscription lives without a ttl."),
    _int("max_queues_per_page", 20, "Largest 'limit' of a queue listing."),
    _int("max_messages_per_page", 20,
         "Largest 'limit' of a message listing and most ids in one bulk get/delete."),
    _int("max_subscriptions_per_page", 20, "Largest 'limit' of a subscription listing."),
    _int("max_pools_per_page", 20, "Largest 'limit' of a pool listing."),
    _int("max_flavors_per_page", 20, "Largest 'limit' of a flavor listing."),
    _int("max_messages_per_claim_or_pop", 20, "Most messages one claim or pop may take."),
    _int("max_queue_metadata", 65536, "Largest queue metadata body, in bytes."),
    _int("max_messages_post_size", 262144, "Largest message post body, in bytes."),
    _int("max_message_ttl", 1209600, "Largest message ttl, in seconds."),
    _int("max_message_delay", 900, "Largest message delay, in seconds.", minimum=0),
    _int("max_claim_ttl", 43200, "Largest claim ttl, in seconds."),
    _int("max_claim_grace", 43200, "Largest claim grace, in seconds."),
    _int("max_filter_policy_keys", 10,
         "Most keys with conditions one subscription filter policy (options.filter) "
         "may test; a nested key counts once, the objects above it do not."),
    _int("max_filter_policy_conditions", 150,
         "Most conditions in one subscription filter policy, summed over its keys."),
    _int("max_filter_policy_depth", 5,
         "Deepest nesting of a subscription filter policy: 1 means only top-level "
         "keys of the message body, 2 one level of nested objects, and so on."),
    _int("max_filter_policy_size", 8192,
         "Largest subscription filter policy, in bytes of its compact JSON."),
    cfg.StrOpt(
        "client_id_uuid_safe",
        default="strict",
        choices=[("strict", "the Client-ID header must be a UUID"),
                 ("off", "any string of min_length_client_id..max_length_client_id")],
        help="How the Client-ID header is checked. Possible values: strict, off.",
    ),
    _int("min_length_client_id", 10, "Shortest Client-ID when client_id_uuid_safe=off."),
    _int("max_length_client_id", 36, "Longest Client-ID when client_id_uuid_safe=off."),
    cfg.BoolOpt(
        "message_delete_with_claim_id",
        default=False,
        help="Require claim_ids alongside ids in bulk message deletes. "
        "Possible values: true, false.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(ALL_OPTS, group=GROUP)

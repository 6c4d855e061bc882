"""Subscription rules shared by the REST API, the websocket gateway and storage.

* validation of a subscription's fields (rest-v2.md §6 wording, which
  clients and tests match on), raising ``herald.common.errors`` types;
* the retry policy (notifications.md §4): validation and the delay
  schedule a dispatcher follows;
* the URI of a websocket connection subscriber (websocket.md §6), which
  names the gateway and the connection that a push must reach.

Pure functions of their arguments and the options passed in: no I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import urllib.parse
from typing import Any

from herald.common import filter_policy, webhook_signing
from herald.common.errors import BadRequest, HeraldError

MIN_SUBSCRIPTION_TTL = 60

# notifications.md §4: defaults of a retry policy.
RETRIES_WITH_NO_DELAY = 3
MINIMUM_DELAY_RETRIES = 3
MINIMUM_DELAY = 5
MAXIMUM_DELAY = 30
MAXIMUM_DELAY_RETRIES = 3
LINEAR_INTERVAL = 5
BACKOFF_FUNCTIONS = ("linear", "arithmetic", "geometric", "exponential")
_INT_KEYS = ("retries_with_no_delay", "minimum_delay_retries", "minimum_delay",
             "maximum_delay", "maximum_delay_retries")

#: The ``options`` keys Herald reads (docs/api-extensions.md); any other key
#: is stored and returned as given, and changes nothing.
OPTION_KEYS = ("post_data", "post_headers", "_retry_policy", "from", "subject",
               webhook_signing.OPTION, filter_policy.OPTION)

#: Host of websocket connection subscribers: ``.invalid`` never resolves, so
#: such a URI can never reach a real web server by accident.
WS_SUBSCRIBER_HOST = "herald-ws.invalid"


# -- validation ---------------------------------------------------------------


def scheme(subscriber: str) -> str:
    """The URI's scheme; "" when urllib cannot split it (unbalanced IPv6
    brackets in the host raise ValueError), which no subscriber type has."""
    try:
        return urllib.parse.urlparse(subscriber).scheme
    except ValueError:
        return ""


def validate_subscriber(subscriber: Any, subscriber_types: list[str]) -> None:
    if not isinstance(subscriber, str) or scheme(subscriber) not in subscriber_types:
        raise BadRequest("The subscriber type of subscription must be supported in the "
                         f"list {list(subscriber_types)}.")


def _spelling(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


_SPELLINGS = {_spelling(key): key for key in OPTION_KEYS}


def validate_options(options: Any, error: type[HeraldError] = BadRequest) -> None:
    """``options`` is a dict whose keys Herald reads are valid.

    Other keys are the subscriber's (Zaqar stores any), except a near miss of
    a key Herald reads (``signingSecret``, ``retry_policy``, ``Post-Headers``):
    stored and ignored, it would silently drop what its sender asked for, so
    it is refused, naming the key meant. ``signing_secret`` null means
    "generate one" (a create) or "rotate to a generated one" (a PATCH)."""
    if options and not isinstance(options, dict):
        raise error("Options must be a dict.")
    if not isinstance(options, dict):
        return
    for key in options:
        meant = _SPELLINGS.get(_spelling(str(key)))
        if meant is not None and key != meant:
            raise error(f"Unknown option {key!r}: the option Herald reads is {meant!r}.")
    validate_retry_policy(options.get("_retry_policy"), error)
    if options.get(webhook_signing.OPTION) is not None:
        webhook_signing.validate_secret(options[webhook_signing.OPTION], error)


def validate_ttl(ttl: Any, now: dt.datetime | None = None) -> None:
    """A truthy ttl: an int, >= 60, and now + ttl representable (year <= 9999)."""
    if not ttl:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise BadRequest("TTL must be an integer.")
    if ttl < MIN_SUBSCRIPTION_TTL:
        raise BadRequest(f"The TTL for a subscription must be at least "
                         f"{MIN_SUBSCRIPTION_TTL} seconds long.")
    moment = now or dt.datetime.now(dt.UTC)
    try:
        moment + dt.timedelta(seconds=ttl)
    except OverflowError as exc:
        raise BadRequest(f"The TTL seconds for a subscription plus current time must be "
                         f"less than {dt.datetime.max}.") from exc


def validate_retry_policy(policy: Any, error: type[HeraldError] = BadRequest) -> None:
    """notifications.md §4 policy validation, reference wording."""
    if not policy:
        return
    if not isinstance(policy, dict):
        raise error("retry_policy must be a dict.")
    for key in _INT_KEYS:
        value = policy.get(key)
        if value is not None and not isinstance(value, int):
            raise error(f"Retry policy: {key} must be a integer.")
    function = policy.get("retry_backoff_function")
    if function and not isinstance(function, str):
        raise error("retry_backoff_function must be a string.")
    if function and function not in BACKOFF_FUNCTIONS:
        raise error("invalid retry_backoff_function.")
    override = policy.get("ignore_subscription_override")
    if override and not isinstance(override, bool):
        raise error("ignore_subscription_override must be a boolean.")
    minimum = policy.get("minimum_delay")
    maximum = policy.get("maximum_delay")
    minimum = MINIMUM_DELAY if minimum is None else minimum
    maximum = MAXIMUM_DELAY if maximum is None else maximum
    if maximum < minimum:
        raise error("minimum_delay must less than maximum_delay.")
    if maximum - minimum < 2 * LINEAR_INTERVAL:
        raise error("invalid minimum_delay and maximum_delay.")


# -- the retry schedule -------------------------------------------------------


def effective_policy(subscription_options: dict[str, Any] | None,
                     queue_metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The policy a delivery follows: the subscription's, else the queue's;
    the queue's whenever either says ``ignore_subscription_override``."""
    own = (subscription_options or {}).get("_retry_policy") or {}
    queue = (queue_metadata or {}).get("_retry_policy") or {}
    own = own if isinstance(own, dict) else {}
    queue = queue if isinstance(queue, dict) else {}
    if own.get("ignore_subscription_override") or queue.get("ignore_subscription_override"):
        return dict(queue)
    return dict(own or queue)


def _int(policy: dict[str, Any], key: str, default: int) -> int:
    value = policy.get(key)
    return default if value is None or isinstance(value, bool) else int(value)


def backoff_delays(minimum: int, maximum: int, function: str) -> list[int]:
    """Phase 3 of the retry procedure (the back-off sequence)."""
    n = (maximum - minimum) // LINEAR_INTERVAL
    if function == "linear" or n < 2:
        return list(range(minimum, maximum, LINEAR_INTERVAL))
    if function == "arithmetic":
        d = 2 * (maximum - minimum) / (n * (n - 1))
        return [math.floor(minimum + (a - 1) * a * d / 2) for a in range(1, n + 1)]
    k = (maximum / minimum) ** (1 / (n - 1)) if minimum > 0 else 1.0
    if function == "geometric":
        return [math.floor(minimum * k ** (a - 1)) for a in range(1, n + 1)]
    p = minimum / k
    return [math.floor(p * k ** a) for a in range(1, n + 1)]


def retry_delays(policy: dict[str, Any]) -> list[float]:
    """Seconds to sleep before each retry, in order; ``len() + 1`` attempts in all.

    With the defaults: 3 × 0, 3 × 5, [5, 10, 15, 20, 25], 3 × 30 (15 attempts)."""
    minimum = _int(policy, "minimum_delay", MINIMUM_DELAY)
    maximum = _int(policy, "maximum_delay", MAXIMUM_DELAY)
    function = policy.get("retry_backoff_function") or "linear"
    delays: list[float] = []
    delays += [0.0] * max(0, _int(policy, "retries_with_no_delay", RETRIES_WITH_NO_DELAY))
    delays += [float(minimum)] * max(0, _int(policy, "minimum_delay_retries",
                                             MINIMUM_DELAY_RETRIES))
    delays += [float(d) for d in backoff_delays(minimum, maximum, function)]
    delays += [float(maximum)] * max(0, _int(policy, "maximum_delay_retries",
                                             MAXIMUM_DELAY_RETRIES))
    return delays


# -- websocket connection subscribers ------------------------------------------


#: What ``ws_subscriber_uri`` puts before the gateway id; a connection id
#: with none of ``_NOT_PLAIN``'s characters ends the URI.
_WS_PREFIX = f"http://{WS_SUBSCRIBER_HOST}/"
_NOT_PLAIN = re.compile(r"[/?#;]")


def ws_subscriber_uri(gateway_id: str, connection_id: str) -> str:
    """The ``http`` URI stored for a websocket connection subscriber."""
    return (f"http://{WS_SUBSCRIBER_HOST}/{urllib.parse.quote(gateway_id, safe='')}/"
            f"{connection_id}")


@functools.lru_cache(maxsize=65536)
def parse_ws_subscriber(uri: str) -> tuple[str, str] | None:
    """``(gateway_id, connection_id)`` of a websocket subscriber URI, else None.

    Memoized (bounded): a worker reading a broadcast queue's thousands of
    subscriptions again after a change parses only the new ones. The URIs
    ``ws_subscriber_uri`` makes are split without ``urlparse`` (a worker's
    first read of 10,000 subscribers spent 140 ms in it); anything else
    takes the general path."""
    if uri.startswith(_WS_PREFIX):
        gateway, _, connection = uri[len(_WS_PREFIX):].partition("/")
        if gateway and connection and not _NOT_PLAIN.search(connection):
            return (urllib.parse.unquote(gateway) if "%" in gateway else gateway), connection
    return parse_ws_subscriber_uri(uri)


def parse_ws_subscriber_uri(uri: str) -> tuple[str, str] | None:
    """``parse_ws_subscriber``'s rule, by a URI parser: host
    ``herald-ws.invalid``, a path of exactly two non-empty segments, the first
    one unquoted (its fast path must agree with this)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.netloc != WS_SUBSCRIBER_HOST:
        return None
    parts = parsed.path.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return urllib.parse.unquote(parts[0]), parts[1]

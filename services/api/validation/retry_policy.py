"""Validation of a webhook ``_retry_policy`` object (notifications.md §4).

Used for queue metadata now and for subscription options later. Raises the
caller-chosen error class so PUT (``Invalid API request``) and PATCH
(``Invalid request body``) keep their different titles. Pure; no I/O.
"""

from __future__ import annotations

from typing import Any

from herald.common.errors import HeraldError

MINIMUM_DELAY = 5
MAXIMUM_DELAY = 30
LINEAR_INTERVAL = 5
BACKOFF_FUNCTIONS = frozenset({"linear", "arithmetic", "geometric", "exponential"})
_INT_KEYS = ("retries_with_no_delay", "minimum_delay_retries", "minimum_delay",
             "maximum_delay", "maximum_delay_retries")


def validate_retry_policy(policy: Any, error: type[HeraldError]) -> None:
    if not policy:
        return
    if not isinstance(policy, dict):
        raise error("retry_policy must be a dict.")
    for key in _INT_KEYS:
        value = policy.get(key)
        # The reference only type-checks truthy values, then crashes comparing a
        # falsy non-int (""/[]) with an int; we reject every non-int instead.
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

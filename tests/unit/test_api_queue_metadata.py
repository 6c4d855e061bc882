"""Queue metadata rules of the REST API: reserved keys (semantics.md §9), shown
defaults, retry policy and the JSON-patch rules of queue PATCH (rest-v2.md §3)."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from herald.common import config
from herald.common.edge import queues as qm
from herald.common.errors import BadRequest, Conflict, InvalidBody


@pytest.fixture(scope="module")
def limits() -> Any:
    return config.load([], conf=cfg.ConfigOpts()).limits


DEFAULTS = {
    "_max_messages_post_size": 262144, "_default_message_ttl": 3600,
    "_default_message_delay": 0, "_dead_letter_queue": None,
    "_dead_letter_queue_messages_ttl": None, "_max_claim_count": None,
    "_enable_encrypt_messages": False,
}


def test_defaults_fill_missing_and_falsy(limits: Any) -> None:
    assert qm.with_defaults(None, limits) == DEFAULTS
    shown = qm.with_defaults({"messages": {"ttl": 600}, "_default_message_ttl": 0,
                              "_max_claim_count": 3, "_enable_encrypt_messages": False},
                             limits)
    assert shown == {**DEFAULTS, "messages": {"ttl": 600}, "_max_claim_count": 3}


VALID = [
    {}, {"free": "form", "nested": {"a": [1]}},
    {"_default_message_ttl": 60}, {"_default_message_ttl": 1209600},
    {"_max_messages_post_size": 1}, {"_max_messages_post_size": 262144},
    {"_default_message_delay": 0}, {"_default_message_delay": 900},
    {"_dead_letter_queue": "dlq", "_max_claim_count": 2},
    {"_dead_letter_queue_messages_ttl": 60}, {"_max_claim_count": -5},
    {"_enable_encrypt_messages": True}, {"_enable_encrypt_messages": 0},
    {"_default_message_ttl": None},
    {"_retry_policy": {"minimum_delay": 5, "maximum_delay": 15,
                       "retry_backoff_function": "geometric",
                       "ignore_subscription_override": True}},
    {"_retry_policy": {}},
]


@pytest.mark.parametrize("metadata", VALID)
def test_valid_metadata(metadata: dict[str, Any], limits: Any) -> None:
    qm.validate_reserved(metadata, limits, BadRequest)


INVALID = [
    ({"_default_message_ttl": "123"}, "_default_message_ttl must be integer."),
    ({"_default_message_ttl": 100.5}, "_default_message_ttl must be integer."),
    ({"_default_message_ttl": ""}, "_default_message_ttl must be integer."),
    ({"_default_message_ttl": 0}, "_default_message_ttl can not exceed 1209600 seconds, "
                                  "and must be at least 60 seconds long."),
    ({"_default_message_ttl": 0.0}, "_default_message_ttl can not exceed"),
    ({"_default_message_ttl": 59}, "_default_message_ttl can not exceed"),
    ({"_default_message_ttl": 1209601}, "_default_message_ttl can not exceed"),
    ({"_default_message_ttl": False}, "_default_message_ttl can not exceed"),
    ({"_max_messages_post_size": "1"}, "_max_messages_post_size must be integer."),
    ({"_max_messages_post_size": 0}, "_max_messages_post_size can not exceed 262144,  and "
                                     "must be at least greater than 0."),
    ({"_max_messages_post_size": 262145}, "_max_messages_post_size can not exceed"),
    ({"_max_claim_count": "2"}, "_max_claim_count must be integer."),
    ({"_max_claim_count": ""}, "_max_claim_count must be integer."),
    ({"_dead_letter_queue_messages_ttl": "x"},
     "_dead_letter_queue_messages_ttl must be integer."),
    ({"_dead_letter_queue_messages_ttl": 0},
     "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds "
     "long."),
    ({"_default_message_delay": "1"}, "_default_message_delay must be integer."),
    ({"_default_message_delay": 901},
     "The TTL can not exceed 900 seconds, and must be at least 0 seconds long."),
    ({"_default_message_delay": -1}, "The TTL can not exceed 900 seconds"),
    ({"_enable_encrypt_messages": "yes"}, "_enable_encrypt_messages must be boolean."),
    ({"_enable_encrypt_messages": 1}, "_enable_encrypt_messages must be boolean."),
    ({"_retry_policy": [1]}, "retry_policy must be a dict."),
    ({"_retry_policy": {"minimum_delay": "5"}}, "Retry policy: minimum_delay must be a integer."),
    ({"_retry_policy": {"retry_backoff_function": 1}}, "retry_backoff_function must be a string."),
    ({"_retry_policy": {"retry_backoff_function": "cubic"}}, "invalid retry_backoff_function."),
    ({"_retry_policy": {"ignore_subscription_override": "yes"}},
     "ignore_subscription_override must be a boolean."),
    ({"_retry_policy": {"minimum_delay": 40}}, "minimum_delay must less than maximum_delay."),
    ({"_retry_policy": {"minimum_delay": 25}}, "invalid minimum_delay and maximum_delay."),
]


@pytest.mark.parametrize("metadata,message", INVALID)
@pytest.mark.parametrize("error", [BadRequest, InvalidBody])
def test_invalid_metadata(metadata: dict[str, Any], message: str, error: type,
                          limits: Any) -> None:
    with pytest.raises(error) as info:
        qm.validate_reserved(metadata, limits, error)
    assert message in info.value.description
    assert info.value.status == 400


# -- JSON patch -----------------------------------------------------------------


def test_patch_ops_are_decoded_in_order() -> None:
    changes = qm.validate_patch([
        {"op": "add", "path": "/metadata/a", "value": 1},
        {"op": "replace", "path": "/METADATA/ b~1c~0 ", "value": None},
        {"op": "remove", "path": "/anything/k"},
    ])
    assert changes == [
        {"op": "add", "key": "a", "value": 1},
        {"op": "replace", "key": "b/c~", "value": None},
        {"op": "remove", "key": "k"},
    ]


BAD_PATCHES = [
    ({"op": "add"}, "Document type not supported."),
    ([], "PATCH body could not be empty for update."),
    ([1], "Operations must be JSON objects."),
    ([{"path": "/metadata/a", "value": 1}], "Unable to find `op`"),
    ([{"op": "move", "path": "/metadata/a"}], "Invalid operation: `move`"),
    ([{"op": "add", "value": 1}], "Unable to find 'path'"),
    ([{"op": "add", "path": 5, "value": 1}], '"path" to be a string'),
    ([{"op": "add", "path": "metadata/a", "value": 1}], 'does not start with "/"'),
    ([{"op": "add", "path": "/metadata//a", "value": 1}], 'contains adjacent "/"'),
    ([{"op": "add", "path": "/metadata/a/", "value": 1}], 'end with "/"'),
    ([{"op": "add", "path": "/metadata/a~2", "value": 1}], 'contains "~"'),
    ([{"op": "add", "path": "/metadata/a~", "value": 1}], 'contains "~"'),
    ([{"op": "add", "path": "/a", "value": 1}],
     "Invalid JSON pointer for this resource: '/a, e.g /metadata/key'"),
    ([{"op": "remove", "path": "/metadata/a/b"}], "Invalid JSON pointer for this resource"),
    ([{"op": "add", "path": "/other/a", "value": 1}], "Invalid JSON pointer for this resource"),
    ([{"op": "add", "path": "/metadata/a"}], 'Operation "add" requires a member named "value".'),
    ([{"op": "replace", "path": "/metadata/a"}],
     'Operation "replace" requires a member named "value".'),
]


@pytest.mark.parametrize("document,message", BAD_PATCHES)
def test_bad_patches(document: Any, message: str) -> None:
    with pytest.raises(InvalidBody) as info:
        qm.validate_patch(document)
    assert message in info.value.description


def test_apply_patch() -> None:
    stored = {"a": 1, "b": {"x": 1}}
    result = qm.apply_patch(stored, [
        {"op": "add", "key": "c", "value": 3},
        {"op": "replace", "key": "a", "value": 10},
        {"op": "replace", "key": "_default_message_ttl", "value": 120},
        {"op": "remove", "key": "b"},
        {"op": "remove", "key": "_max_messages_post_size"},  # unstored reserved: no-op
    ])
    assert result == {"a": 10, "c": 3, "_default_message_ttl": 120}
    assert stored == {"a": 1, "b": {"x": 1}}  # the input is not modified


@pytest.mark.parametrize("change,message", [
    ({"op": "replace", "key": "nope", "value": 1}, "Can't replace non-existent object nope."),
    ({"op": "remove", "key": "nope"}, "Can't remove non-existent object nope."),
])
def test_apply_patch_conflicts(change: dict[str, Any], message: str) -> None:
    with pytest.raises(Conflict) as info:
        qm.apply_patch({}, [change])
    assert info.value.description == message
    assert info.value.status == 409

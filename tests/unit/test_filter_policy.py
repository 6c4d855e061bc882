"""herald.common.filter_policy: SNS filter-policy semantics over JSON bodies."""

from __future__ import annotations

import json

import pytest

from herald.common import filter_policy
from herald.common.filter_policy import FilterPolicyError, compile_policy


def matches(policy, body):
    return compile_policy(policy).matches(body)


@pytest.mark.parametrize("policy, body, expected", [
    # exact values: strings, numbers (150 == 150.0), booleans, null; OR within a list
    ({"kind": ["order", "refund"]}, {"kind": "refund"}, True),
    ({"kind": ["order"]}, {"kind": "Order"}, False),
    ({"n": [150]}, {"n": 150.0}, True),
    ({"n": [1]}, {"n": True}, False),
    ({"ok": [True]}, {"ok": 1}, False),
    ({"ok": [True]}, {"ok": True}, True),
    ({"x": [None]}, {"x": None}, True),
    ({"x": [None]}, {}, False),
    ({"n": ["5"]}, {"n": 5}, False),
    # AND across keys
    ({"kind": ["order"], "amount": [{"numeric": [">=", 100]}]}, {"kind": "order", "amount": 150},
     True),
    ({"kind": ["order"], "amount": [{"numeric": [">=", 100]}]}, {"kind": "order", "amount": 5},
     False),
    ({"kind": ["order"], "amount": [{"numeric": [">=", 100]}]},
     {"kind": "refund", "amount": 500}, False),
    # nested keys
    ({"a": {"b": ["x"]}}, {"a": {"b": "x"}}, True),
    ({"a": {"b": ["x"]}}, {"a": "x"}, False),
    ({"a": {"b": [{"exists": False}]}}, {"a": 3}, True),
    ({"a": {"b": {"c": [1]}}}, {"a": {"b": {"c": 1}}}, True),
    # prefix / suffix
    ({"r": [{"prefix": "eu-"}]}, {"r": "eu-west-1"}, True),
    ({"r": [{"prefix": "eu-"}]}, {"r": 5}, False),
    ({"f": [{"suffix": ".png"}]}, {"f": "a.png"}, True),
    ({"f": [{"suffix": ".png"}]}, {"f": "a.jpg"}, False),
    # anything-but needs the key
    ({"k": [{"anything-but": ["order", 5]}]}, {"k": "refund"}, True),
    ({"k": [{"anything-but": ["order", 5]}]}, {"k": 5}, False),
    ({"k": [{"anything-but": "order"}]}, {}, False),
    # numeric ranges
    ({"n": [{"numeric": [">", 0, "<=", 10]}]}, {"n": 10}, True),
    ({"n": [{"numeric": [">", 0, "<=", 10]}]}, {"n": 0}, False),
    ({"n": [{"numeric": ["=", 3]}]}, {"n": 3.0}, True),
    ({"n": [{"numeric": ["<", 3]}]}, {"n": "2"}, False),
    # exists
    ({"k": [{"exists": True}]}, {"k": None}, True),
    ({"k": [{"exists": True}]}, {}, False),
    ({"k": [{"exists": False}]}, {}, True),
    ({"k": [{"exists": False}]}, {"k": 1}, False),
    # a list value matches when one element does
    ({"tags": ["red"]}, {"tags": ["blue", "red"]}, True),
    ({"tags": [{"numeric": [">", 5]}]}, {"tags": [1, 2]}, False),
    # bodies that are not objects match nothing
    ({"k": [{"exists": False}]}, "text", False),
    ({"k": [{"exists": False}]}, [1], False),
])
def test_semantics(policy, body, expected):
    assert matches(policy, body) is expected


@pytest.mark.parametrize("policy, words", [
    ({"k": [{"numeric": [">=", True]}]}, ['key "k"', '{"numeric": [">=", true]}']),
    ({"k": [{"numeric": [">=", 1, "<", 1]}]}, ['key "k"', "must be a range"]),
    ({"k": [{"numeric": ["=", 1, "<", 5]}]}, ['key "k"', "must be a range"]),
    ({"k": [{"numeric": [">", 1, "<"]}]}, ['key "k"', "[operator, number]"]),
    ({"k": [{"anything-but": []}]}, ['key "k"', "anything-but"]),
    ({"k": [{"anything-but": [{"prefix": "a"}]}]}, ['key "k"', "anything-but"]),
    ({"a": {}}, ['key "a" is an empty object']),
    ({"a": {"b": 1}}, ['key "a.b" must map']),
    ({"k": [1.5e400]}, ['key "k"']),
])
def test_invalid_policies_name_the_key_and_condition(policy, words):
    with pytest.raises(FilterPolicyError) as caught:
        compile_policy(policy)
    assert caught.value.status == 400
    assert all(word in caught.value.description for word in words), caught.value.description


def test_counts():
    policy = compile_policy({"a": ["x", "y"], "b": {"c": [1], "d": {"e": [{"exists": True}]}}})
    assert (policy.keys, policy.conditions, policy.depth) == (3, 4, 3)


def test_stored_policies_compile_once_and_bad_ones_filter_nothing():
    filter_policy.of_options.cache_clear()
    text = json.dumps({"filter": {"kind": ["order"]}, "post_data": "x"})
    first = filter_policy.of_options(text)
    assert first is not None and first.matches({"kind": "order"})
    assert filter_policy.of_options(str(text)) is first
    assert filter_policy.of_options.cache_info().misses == 1
    assert filter_policy.of_options(json.dumps({"post_data": "x"})) is None
    assert filter_policy.of_options(json.dumps({"filter": "legacy"})) is None
    assert filter_policy.of_options(None) is None

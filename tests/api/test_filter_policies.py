"""Subscription filter policies over REST (issue 23 §1, docs/filter-policies.md).

A subscription's ``options.filter`` decides which messages it is notified
of: checked by the edge on create and PATCH (400 naming the key and the
condition, limits from ``[limits]``), applied by the notifier stage in the
post's transaction (a message it filters out costs no outbox row, so the
rows right after a post say what will ever be pushed).
"""

from __future__ import annotations

import pytest

from tests.api.test_subscriptions import HOOK, Hook, create, notification_rows, subs

from .conftest import assert_error

EXAMPLE = {"kind": ["order"], "amount": [{"numeric": [">=", 100]}]}
BODIES = [{"kind": "order", "amount": 150}, {"kind": "order", "amount": 5},
          {"kind": "refund", "amount": 500}]


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def post(api, bodies, queue="q"):
    resp = api.post(f"/v2/queues/{queue}/messages",
                    json_body={"messages": [{"body": b, "ttl": 120} for b in bodies]})
    assert resp.status_code == 201, resp.text


def test_the_issue_example_pushes_only_the_first_message(api, hook, stack):
    stack.override("retry_delay_scale", 0.01, group="notification")
    sid = create(api, hook.url, options={"filter": EXAMPLE})
    assert api.get(f"{subs()}/{sid}").json()["options"]["filter"] == EXAMPLE
    post(api, BODIES)
    # One row for three messages: the two others were never written down.
    assert len(notification_rows(stack, api)) == 1
    hook.wait_for(1)
    # A later matching message arrives after it, and nothing came in between.
    post(api, [{"kind": "order", "amount": 100, "last": True}])
    assert len(notification_rows(stack, api)) == 2
    assert [b["body"] for b in hook.wait_for(2)] == [
        {"kind": "order", "amount": 150}, {"kind": "order", "amount": 100, "last": True}]


def test_subscribers_without_a_filter_still_get_everything(api, stack):
    create(api, HOOK)
    create(api, "http://127.0.0.1:9/refunds",
           options={"filter": {"kind": [{"anything-but": ["order"]}]}})
    post(api, BODIES + ["not an object"])
    rows = stack.outbox_rows(api.project, "q")
    assert sorted(r.subscriber for r in rows) == [HOOK] * 4 + ["http://127.0.0.1:9/refunds"]


def test_patch_sets_and_removes_a_filter(api, stack):
    sid = create(api, HOOK)
    resp = api.patch(f"{subs()}/{sid}", json_body={"options": {"filter": {
        "meta": {"region": [{"prefix": "eu-"}]}}}})
    assert resp.status_code == 204, resp.text
    post(api, [{"meta": {"region": "eu-west"}}, {"meta": {"region": "us-east"}},
               {"region": "eu-west"}])
    assert len(notification_rows(stack, api)) == 1
    assert api.patch(f"{subs()}/{sid}", json_body={"options": {}}).status_code == 204
    post(api, [{"region": "us"}])
    assert len(notification_rows(stack, api)) == 2


@pytest.mark.parametrize("policy, words", [
    ({"kind": "order"}, ['key "kind"', "list of conditions"]),
    ({"kind": []}, ['key "kind" has no condition']),
    ({"a": {"b": [{"prefix": 3}]}}, ['key "a.b"', '{"prefix": 3}', "non-empty string"]),
    ({"amount": [{"numeric": [">=", "x"]}]}, ['key "amount"', '{"numeric": [">=", "x"]}']),
    ({"amount": [{"numeric": ["<", 5, ">", 1]}]}, ['key "amount"', "must be a range"]),
    ({"x": [{"between": [1, 2]}]}, ['key "x"', "unknown operator 'between'"]),
    ({"x": [{"exists": "yes"}]}, ['key "x"', "exists must be true or false"]),
    ({"x": [{"prefix": "a", "suffix": "b"}]}, ['key "x"', "exactly one operator"]),
    ({"x": [[1]]}, ['key "x"', "[1]"]),
    ({}, ["non-empty object"]),
    ([], ["non-empty object"]),
])
def test_invalid_policies_are_400_naming_key_and_condition(api, policy, words):
    body = assert_error(api.post(subs(), json_body={"subscriber": HOOK,
                                                    "options": {"filter": policy}}),
                        400, "Invalid API request")
    assert all(word in body["description"] for word in words), body
    sid = create(api, HOOK)
    body = assert_error(api.patch(f"{subs()}/{sid}", json_body={"options": {"filter": policy}}),
                        400, "Invalid API request")
    assert all(word in body["description"] for word in words), body


def test_limits_are_configurable(api, stack):
    wide = {f"k{i}": ["v"] for i in range(4)}
    deep = {"a": {"b": {"c": ["v"]}}}
    many = {"k": [str(i) for i in range(6)]}
    for policy in (wide, deep, many):
        create(api, f"{HOOK}/{len(str(policy))}", options={"filter": policy})
    stack.override("max_filter_policy_keys", 3, group="limits")
    stack.override("max_filter_policy_depth", 2, group="limits")
    stack.override("max_filter_policy_conditions", 5, group="limits")
    stack.override("max_filter_policy_size", 60, group="limits")
    for policy, text in ((wide, "4 keys, more than 3"), (deep, "3 levels of nesting, more than 2"),
                         (many, "6 conditions, more than 5"),
                         ({"k": ["x" * 60]}, "bytes, more than 60")):
        assert_error(api.post(subs(), json_body={"subscriber": HOOK,
                                                 "options": {"filter": policy}}),
                     400, description=text)


def test_a_near_miss_of_the_filter_key_is_refused(api):
    assert_error(api.post(subs(), json_body={"subscriber": HOOK,
                                             "options": {"Filter": {"kind": ["order"]}}}),
                 400, description="the option Herald reads is 'filter'")

"""Message post/delete and claim rules of the edge layer (rest-v2.md §4-5)."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from herald.common import config
from herald.common.edge import claims, messages
from herald.common.errors import BadRequest, InvalidBody


@pytest.fixture(scope="module")
def limits() -> Any:
    return config.load([], conf=cfg.ConfigOpts()).limits


def test_post_produces_storage_messages(limits: Any) -> None:
    document = {"messages": [{"body": None}, {"body": [1], "ttl": 60, "delay": "raw",
                                              "extra": "dropped"}]}
    assert messages.rest_post(document, limits) == [
        {"body": None, "ttl": None},
        {"body": [1], "ttl": 60, "delay": "raw"},
    ]


@pytest.mark.parametrize("document,error,message", [
    ([], BadRequest, "No messages were found in the request body."),
    ({}, BadRequest, "No messages were found in the request body."),
    ({"messages": {"body": 1}}, InvalidBody, "Document type not supported."),
    ({"messages": [1]}, InvalidBody, "Document type not supported."),
    ({"messages": [{"ttl": 60}]}, InvalidBody, 'Missing "body" field.'),
    ({"messages": [{"body": 1, "ttl": "60"}]}, InvalidBody,
     'The value of the "ttl" field must be a int.'),
    ({"messages": [{"body": 1, "ttl": None}]}, InvalidBody, 'must be a int'),
    ({"messages": []}, BadRequest, "No messages to enqueu."),
    ({"messages": [{"body": 1, "ttl": 59}]}, BadRequest,
     "The TTL for a message may not exceed 1209600 seconds, and must be at least 60 seconds "
     "long."),
    ({"messages": [{"body": 1, "ttl": 1209601}]}, BadRequest, "The TTL for a message"),
    # Types are checked for every message before any range.
    ({"messages": [{"body": 1, "ttl": 1}, {"ttl": 60}]}, InvalidBody, 'Missing "body"'),
])
def test_post_errors(document: Any, error: type, message: str, limits: Any) -> None:
    with pytest.raises(error) as info:
        messages.rest_post(document, limits)
    assert message in info.value.description


def test_post_size(limits: Any) -> None:
    messages.post_size(262144, limits)
    with pytest.raises(BadRequest, match="Message collection size is too large. Max size 262144"):
        messages.post_size(262145, limits)


@pytest.mark.parametrize("ids,pop,claim_ids,message", [
    (None, None, None, 'either "ids" or "pop"'),
    (None, 0, None, "Pop value must be at least 1 and may not be greater than 20."),
    (None, 21, None, "Pop value must be at least 1"),
    ([str(i) for i in range(21)], None, None,
     "ids parameter should have at least 1 and not greater than 20 values."),
    (["a"], 1, None, "pop and id params cannot be present together in the delete request."),
])
def test_bulk_delete_errors(ids: Any, pop: Any, claim_ids: Any, message: str,
                            limits: Any) -> None:
    with pytest.raises(BadRequest) as info:
        messages.bulk_delete(ids, pop, claim_ids, limits)
    assert message in info.value.description


def test_bulk_delete_ok(limits: Any) -> None:
    messages.bulk_delete(["a"] * 20, None, None, limits)
    messages.bulk_delete(None, 20, None, limits)


@pytest.mark.parametrize("document,limit,expected", [
    (None, None, (300, 60, 10)),
    ({}, 5, (300, 60, 5)),
    ({"ttl": None, "grace": None}, None, (300, 60, 10)),  # python-zaqarclient's nulls
    ({"ttl": 60, "grace": 43200}, 20, (60, 43200, 20)),
    ({"ttl": 43200, "grace": 60}, 1, (43200, 60, 1)),
])
def test_claim_create(document: Any, limit: Any, expected: tuple, limits: Any) -> None:
    assert claims.rest_create(document, limit, limits) == expected


CLAIM_TTL = ("The TTL for a claim may not exceed 43200 seconds, and must be at least 60 "
             "seconds long.")
CLAIM_GRACE = ("The grace for a claim may not exceed 43200 seconds, and must be at least 60 "
               "seconds long.")
CLAIM_LIMIT = "Limit must be at least 1 and may not be greater than 20."


@pytest.mark.parametrize("document,limit,message", [
    ([], None, "Document type not supported."),
    ({"ttl": "300"}, None, 'The value of the "ttl" field must be a int.'),
    ({"grace": 1.5}, None, 'The value of the "grace" field must be a int.'),
    ({"ttl": 59}, None, CLAIM_TTL),
    ({"ttl": 43201}, None, CLAIM_TTL),
    ({}, 0, CLAIM_LIMIT),
    ({}, 21, CLAIM_LIMIT),
    ({"grace": 59}, None, CLAIM_GRACE),
    ({"grace": 43201}, None, CLAIM_GRACE),
    # Order: ttl, then limit, then grace.
    ({"ttl": 1, "grace": 1}, 0, CLAIM_TTL),
    ({"grace": 1}, 0, CLAIM_LIMIT),
    # Types before ranges.
    ({"ttl": 1, "grace": "x"}, None, 'The value of the "grace" field must be a int.'),
])
def test_claim_create_errors(document: Any, limit: Any, message: str, limits: Any) -> None:
    with pytest.raises((BadRequest, InvalidBody)) as info:
        claims.rest_create(document, limit, limits)
    assert info.value.description == message


def test_claim_update(limits: Any) -> None:
    assert claims.rest_update({}, limits) == (300, 60)  # Quirk: reset to defaults
    assert claims.rest_update({"ttl": 100}, limits) == (100, 60)
    assert claims.rest_update({"ttl": 100, "grace": 5}, limits) == (100, 5)  # grace unchecked
    with pytest.raises(BadRequest, match="The TTL for a claim"):
        claims.rest_update({"ttl": 10}, limits)
    with pytest.raises(InvalidBody, match="Document type not supported."):
        claims.rest_update([1], limits)

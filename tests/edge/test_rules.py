"""The edge rules that used to differ between REST and websocket, as pure
functions: one decision, the wording each edge renders."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from herald.common import config
from herald.common.edge import headers, messages, unavailable
from herald.common.errors import BadRequest


@pytest.fixture(scope="module")
def limits() -> Any:
    return config.load([], conf=cfg.ConfigOpts()).limits


@pytest.mark.parametrize("ids,pop,reason", [
    # ids with pop is checked first, whatever else is wrong (reference order)
    (["a"] * 21, 21, "pop and id params cannot be present together"),
    (None, None, 'either "ids" or "pop"'),
    # pop=0 and an empty id list are out of range, not "neither"
    (None, 0, "Pop value must be at least 1"),
    ([], None, "ids parameter should have at least 1"),
])
def test_bulk_delete_order(limits: Any, ids: Any, pop: Any, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        messages.bulk_delete(ids, pop, None, limits)


def test_client_id_one_rule_two_wordings(limits: Any) -> None:
    with pytest.raises(headers.RefusedHeader) as rest:
        headers.client_id("nope", limits)
    assert (rest.value.title, rest.value.description) == ("Wrong UUID value",
                                                          "Malformed hexadecimal UUID.")
    with pytest.raises(BadRequest, match="^Malformed hexadecimal UUID.$"):
        headers.websocket_client_id("nope", limits)
    headers.websocket_client_id("{12345678-1234-5678-1234-567812345678}", limits)


def test_queue_name_one_rule_two_wordings() -> None:
    with pytest.raises(headers.RefusedHeader) as rest:
        headers.queue_identification("a" * 65, "p", "topic")
    assert rest.value.title == "Invalid topic identification"
    with pytest.raises(BadRequest, match="may not be more than 64 characters"):
        headers.websocket_queue_identification("a" * 65, "p")


def test_websocket_post_wording() -> None:
    with pytest.raises(BadRequest, match='^Bad request. Missing "body" field.$'):
        messages.websocket_clean_messages([{"ttl": 60}])
    cleaned = messages.websocket_clean_messages([{"body": 1, "delay": 30}])
    assert cleaned == [{"body": 1, "ttl": None, "delay": 0}]


def test_websocket_503_summaries() -> None:
    assert unavailable.websocket_summary("claim_create") == "Claim could not be created."
    assert unavailable.websocket_summary("ping_node") == unavailable.GENERIC

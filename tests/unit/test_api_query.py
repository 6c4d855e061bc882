"""Query-string parsing of the REST API (rest-v2.md §0.3)."""

from __future__ import annotations

import pytest

from herald.api.errors import APIError
from herald.api.query_string import QueryParams, render_query


@pytest.mark.parametrize("raw", ["true", "True", "t", "yes", "y", "1", "on"])
def test_true_spellings(raw: str) -> None:
    assert QueryParams.parse(f"echo={raw}").get_bool("echo") is True


@pytest.mark.parametrize("raw", ["false", "False", "f", "no", "n", "0", "off"])
def test_false_spellings(raw: str) -> None:
    assert QueryParams.parse(f"echo={raw}").get_bool("echo") is False


@pytest.mark.parametrize("raw", ["TRUE", "None", "2", "yess", "%20true"])
def test_other_booleans_are_invalid(raw: str) -> None:
    with pytest.raises(APIError) as info:
        QueryParams.parse(f"echo={raw}").get_bool("echo")
    assert info.value.status == 400
    assert info.value.title == "Invalid parameter"
    assert info.value.description.startswith('The "echo" parameter is invalid.')


@pytest.mark.parametrize("raw,value", [("5", 5), ("-1", -1), ("%2B3", 3), ("0", 0),
                                       ("99999999999999999999", 99999999999999999999)])
def test_integers(raw: str, value: int) -> None:
    assert QueryParams.parse(f"limit={raw}").get_int("limit") == value


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "0x10", "1_000", "%201"])
def test_non_decimal_integers_are_invalid(raw: str) -> None:
    with pytest.raises(APIError) as info:
        QueryParams.parse(f"limit={raw}").get_int("limit")
    assert (info.value.status, info.value.title) == (400, "Invalid parameter")
    assert '"limit"' in info.value.description


def test_empty_values_are_absent() -> None:
    params = QueryParams.parse("echo=&limit=&marker=&ids=")
    assert params.get_bool("echo") is None
    assert params.get_int("limit") is None
    assert params.get_str("marker") is None
    assert params.get_list("ids") is None
    assert params.keys() == []


def test_lists_merge_commas_and_repeats_in_order() -> None:
    assert QueryParams.parse("ids=a,b&ids=c").get_list("ids") == ["a", "b", "c"]
    assert QueryParams.parse("ids=a&ids=b&ids=c").get_list("ids") == ["a", "b", "c"]
    assert QueryParams.parse("ids=a,,b,").get_list("ids") == ["a", "b"]
    assert QueryParams.parse("ids=,").get_list("ids") is None
    assert QueryParams.parse("other=1").get_list("ids") is None


def test_last_scalar_wins_and_keys_keep_order() -> None:
    params = QueryParams.parse("b=1&a=2&b=3")
    assert params.get_str("b") == "3"
    assert params.keys() == ["b", "a"]
    assert "a" in params and "c" not in params


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert QueryParams.parse("marker=%FF").get_str("marker") == "\ufffd"


def test_render_query() -> None:
    rendered = render_query([("limit", 3), ("echo", True), ("detailed", False),
                             ("ids", ["a", "b"]), ("marker", "x y")])
    assert rendered == "limit=3&echo=true&detailed=false&ids=a,b&marker=x+y"

"""Header helpers of the REST API request pipeline (rest-v2.md §0.2)."""

from __future__ import annotations

import uuid

import pytest

from herald.common.edge.headers import accepts_json, is_uuid

U = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize("value", [
    U.hex, str(U), str(U).upper(), "{" + str(U) + "}", "urn:uuid:" + str(U),
    "URN:UUID:" + U.hex, "1234-5678" + U.hex[8:],
])
def test_valid_client_ids(value: str) -> None:
    assert is_uuid(value)


@pytest.mark.parametrize("value", [
    "", "not-a-uuid", U.hex[:-1], U.hex + "0", U.hex[:-1] + "g", U.hex[:-1] + "_",
    "+" + U.hex[1:], "{" + U.hex, "mylittleclient",
])
def test_invalid_client_ids(value: str) -> None:
    assert not is_uuid(value)


@pytest.mark.parametrize("accept", [
    "*/*", "application/json", "application/*", "APPLICATION/JSON",
    "text/html, application/json;q=0.5", "text/plain; q=1, */*; q=0.1",
])
def test_accept_allows_json(accept: str) -> None:
    assert accepts_json(accept)


@pytest.mark.parametrize("accept", [
    "text/html", "application/xml", "application/json;q=0", "application/json-home",
    "text/*", "application/json;q=abc",
])
def test_accept_refuses(accept: str) -> None:
    assert not accepts_json(accept)

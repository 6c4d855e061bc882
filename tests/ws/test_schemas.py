"""The websocket request check: ``validate`` answers exactly as
``jsonschema`` (the reference's validator) would, for the fuzz test's
envelopes as the gateway decodes them from JSON and from msgpack frames."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from herald.ws_gateway import codec, schemas
from tests.ws.test_fuzz import ENVELOPES, EXAMPLES, HEADERS, _json_frame, _msgpack_frame


def _reference(payload: Any) -> str:
    """What ``validate`` must answer: the action, or the exception's name."""
    action = payload.get("action") if isinstance(payload, dict) else None
    if not isinstance(action, str) or action not in schemas.SCHEMAS:
        return "InvalidAction"
    valid = schemas._VALIDATORS[action].is_valid(payload)
    return action if valid else "SchemaValidationFailed"


def _answer(payload: Any) -> str:
    try:
        return schemas.validate(payload)
    except (schemas.InvalidAction, schemas.SchemaValidationFailed) as exc:
        return type(exc).__name__


@settings(max_examples=EXAMPLES * 3, deadline=None, derandomize=True)
@given(payload=ENVELOPES)
def test_validate_answers_as_jsonschema_does(payload: Any) -> None:
    for frame in (_json_frame(payload), _msgpack_frame(payload)):
        if frame is None:
            continue
        try:
            decoded = codec.decode(frame)
        except codec.DecodeError:
            continue  # answered before any schema is looked at
        if isinstance(decoded, dict):
            assert _answer(decoded) == _reference(decoded)


@pytest.mark.parametrize("body, valid", [
    ({"queue_name": "q", "messages": [{"body": b"\x00binary", "ttl": 60}]}, True),
    ({"queue_name": b"q", "messages": []}, False),
    ({"queue_name": "q", "messages": [], 7: "integer key"}, True),
    ({"queue_name": "q", "messages": {"not": "an array"}}, False),
    ({"queue_name": "q"}, False),
])
def test_msgpack_only_values_are_judged_by_jsonschema(body: dict[Any, Any], valid: bool) -> None:
    payload = {"action": "message_post", "headers": HEADERS, "body": body}
    assert _answer(payload) == ("message_post" if valid else "SchemaValidationFailed")

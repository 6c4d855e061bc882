"""herald.common.webhook_signing: signatures as the standardwebhooks package
computes them, and the bookkeeping of rotations (which secrets sign when)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from standardwebhooks import Webhook

from herald.common import webhook_signing as ws

A = "whsec_" + base64.b64encode(b"a" * 24).decode()
B = "whsec_" + base64.b64encode(b"b" * 32).decode()
C = "whsec_" + base64.b64encode(b"c" * 64).decode()


def test_the_signature_is_the_libraries() -> None:
    stamp = 1_765_000_000
    expected = Webhook(B).sign("msg_x_1", dt.datetime.fromtimestamp(stamp, dt.UTC), b'{"a": 1}')
    assert ws.signature(B, "msg_x_1", stamp, b'{"a": 1}') == expected
    headers = ws.headers([B, A], "msg_x_1", stamp, b"{}")
    assert headers["webhook-signature"].split(" ") == [
        ws.signature(B, "msg_x_1", stamp, b"{}"), ws.signature(A, "msg_x_1", stamp, b"{}")]


def test_unpadded_secrets_are_accepted_as_receivers_libraries_do() -> None:
    unpadded = "whsec_" + base64.b64encode(b"u" * 32).decode().rstrip("=")
    assert ws.key_bytes(unpadded) == b"u" * 32


@pytest.mark.parametrize("secret", ["whsec_", "whsec_a", "a" * 40, None, "whsec_" + "*" * 40])
def test_malformed_secrets(secret) -> None:
    with pytest.raises(ValueError):
        ws.key_bytes(secret)


def test_rotations_keep_replaced_secrets_for_their_overlap() -> None:
    record = ws.new_record(A)
    assert ws.signing_secrets(record, 0) == [A]
    record = ws.rotated_record(record, B, now=100, overlap=50)
    record = ws.rotated_record(record, C, now=120, overlap=50)
    assert ws.current_secret(record) == C
    assert ws.signing_secrets(record, 149) == [C, B, A]
    assert ws.signing_secrets(record, 150) == [C, B]
    assert ws.signing_secrets(record, 170) == [C]
    assert ws.rotated_record(record, C, now=200, overlap=50) == record  # no change
    assert ws.signing_secrets(ws.rotated_record(record, A, now=200, overlap=0), 200) == [A]
    generated = ws.current_secret(ws.rotated_record(record, None, now=200, overlap=50))
    assert generated not in (A, B, C) and len(ws.key_bytes(generated)) == 32

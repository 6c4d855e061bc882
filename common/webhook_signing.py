"""Signed webhooks per the Standard Webhooks specification (www.standardwebhooks.com).

Every webhook delivery carries three headers:

* ``webhook-id``: ``msg_<subscription id>_<outbox row seq>``, the delivery's
  durable outbox row, so every retry of one delivery (by any dispatcher,
  after a lease ran out too) carries the same id and a receiver can drop
  duplicates by it; subscription ids are unique across pools, seqs within
  the subscription's database;
* ``webhook-timestamp``: the attempt's time, integer epoch seconds;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
  for each secret that signs now, space-separated.

The key is the subscription's secret, ``whsec_`` + base64 of 24 to 64
random bytes (Herald generates 32). A rotation keeps the replaced secret
signing until its overlap ends (``[notification] signing_secret_overlap``).
What storage keeps is the *signing record*, JSON text in the subscription
row: ``{"secret": current, "previous": [{"secret", "until"}, ...]}``.

Pure functions: no I/O, no clock of their own (callers pass "now").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from typing import Any

from herald.common.errors import BadRequest, HeraldError

#: The headers of a signed delivery (lower case).
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
#: The subscription option a subscriber supplies its secret in.
OPTION = "signing_secret"
PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
GENERATED_KEY_BYTES = 32
MALFORMED = (f"options.{OPTION} must be '{PREFIX}' followed by the base64 of "
             f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes.")


# -- secrets ------------------------------------------------------------------


def key_bytes(secret: str) -> bytes:
    """The HMAC key of a well-formed secret (``ValueError`` otherwise)."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise ValueError("no whsec_ prefix")
    encoded = secret[len(PREFIX):]
    encoded += "=" * (-len(encoded) % 4)  # receivers' libraries accept it unpadded too
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError("wrong key length")
    return key


def validate_secret(secret: Any, error: type[HeraldError] = BadRequest) -> None:
    """A supplied secret is well formed; the message never repeats the value
    (error bodies and logs must not carry a secret)."""
    try:
        key_bytes(secret)
    except ValueError:
        raise error(MALFORMED) from None


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(GENERATED_KEY_BYTES)).decode("ascii")


# -- the signing record stored with a subscription -----------------------------


def _load(stored: str | None) -> dict[str, Any]:
    if not stored:
        return {}
    record = json.loads(stored)
    return record if isinstance(record, dict) else {}


def new_record(secret: str | None) -> str:
    """The record of a new subscription: ``secret``, or a generated one."""
    return json.dumps({"secret": secret or new_secret(), "previous": []})


def current_secret(stored: str | None) -> str | None:
    secret = _load(stored).get("secret")
    return secret if isinstance(secret, str) else None


def rotated_record(stored: str | None, secret: str | None, now: float,
                   overlap: float) -> str:
    """The record after a rotation to ``secret`` (None: a generated one).

    The replaced secret keeps signing until ``now + overlap``; previous
    secrets whose overlap ended are dropped. Rotating to the current secret
    changes nothing."""
    record = _load(stored)
    current = record.get("secret")
    if secret is not None and secret == current:
        return stored or new_record(secret)
    previous = [p for p in record.get("previous") or []
                if isinstance(p, dict) and p.get("until", 0) > now and p.get("secret") != secret]
    if isinstance(current, str) and overlap > 0:
        previous.insert(0, {"secret": current, "until": now + overlap})
    return json.dumps({"secret": secret or new_secret(), "previous": previous})


def signing_secrets(stored: str | None, now: float) -> list[str]:
    """The secrets that sign a delivery at ``now``: the current one first,
    then those replaced less than their overlap ago."""
    record = _load(stored)
    secrets = [record["secret"]] if isinstance(record.get("secret"), str) else []
    secrets += [p["secret"] for p in record.get("previous") or []
                if isinstance(p, dict) and isinstance(p.get("secret"), str)
                and p.get("until", 0) > now]
    return secrets


# -- the headers of one delivery -----------------------------------------------


def webhook_id(subscription_id: str, seq: int) -> str:
    return f"msg_{subscription_id}_{seq}"


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (no signature header
    when no secret signs: a subscription stored before signing existed and
    never migrated)."""
    result = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secrets:
        result["webhook-signature"] = " ".join(
            signature(secret, msg_id, timestamp, body) for secret in secrets)
    return result

"""Pre-signed URL signatures (rest-v2.md §11), shared by every service.

The REST API (``POST .../share`` and verification of ``URL-Signature``
headers), the websocket gateway (pre-signed requests) and the storage
workers (subscription confirmation messages) all compute the same HMAC, so it
lives here, once. Interoperability with signatures made by a reference Zaqar
server is kept, quirks included: the field separator is the two characters
backslash and ``n`` (not a newline), and a missing project is the text
``None``.

Pure functions of their arguments: no configuration lookup and no I/O here
(callers pass ``[signed_url] secret_key``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable

#: Literally backslash + "n": the reference formats a raw string.
SEPARATOR = "\\n"
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S"


class InvalidExpires(ValueError):
    """``expires`` is not an ISO 8601 date-time."""


def parse_expires(expires: str | dt.datetime) -> dt.datetime:
    """``expires`` as an aware UTC datetime (a naive value counts as UTC)."""
    if isinstance(expires, dt.datetime):
        moment = expires
    else:
        if not isinstance(expires, str) or not expires.strip():
            raise InvalidExpires(f"not a date-time: {expires!r}")
        text = expires.strip()
        try:
            int(text)
        except ValueError:
            pass
        else:  # a bare number is not a date-time (reference: 400)
            raise InvalidExpires(f"not a date-time: {expires!r}")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidExpires(str(exc)) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def format_expires(expires: str | dt.datetime) -> str:
    """The signed form of ``expires``: naive UTC, ``YYYY-MM-DDTHH:MM:SS``."""
    return parse_expires(expires).strftime(EXPIRES_FORMAT)


def signature(secret_key: str, paths: Iterable[str], methods: Iterable[str],
              project: str | None, expires: str | dt.datetime) -> str:
    """Lowercase hex HMAC-SHA256 of the signed fields (rest-v2.md §11)."""
    data = SEPARATOR.join([
        ",".join(sorted(paths)),
        ",".join(sorted(methods)),
        "None" if project is None else str(project),
        format_expires(expires),
    ])
    return hmac.new(secret_key.encode("utf-8"), data.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def verify(secret_key: str, given_signature: str, paths: Iterable[str],
           methods: Iterable[str], project: str | None, expires: str | dt.datetime,
           now: dt.datetime | None = None) -> bool:
    """True when ``given_signature`` signs these fields and has not expired.

    Whether the request's method and path are among ``methods``/``paths`` is
    the caller's check (REST matches paths by regular-expression search, the
    websocket by action)."""
    try:
        moment = parse_expires(expires)
    except InvalidExpires:
        return False
    if moment <= (now or dt.datetime.now(dt.UTC)):
        return False
    expected = signature(secret_key, paths, methods, project, moment)
    return hmac.compare_digest(expected, str(given_signature or ""))

"""Pre-signed URL signatures (rest-v2.md §11), shared by every service.

The REST API (``POST .../share`` and verification of ``URL-Signature``
headers), the websocket gateway (pre-signed requests) and the storage
workers (subscription confirmation messages) all compute the same HMAC, so it
lives here, once. Interoperability with signatures made by a reference Zaqar
server is kept, quirks included: the field separator is the two characters
backslash and ``n`` (not a newline), and a missing project is the text
``None``.

``verify_request`` is the one check of a pre-signed request, for REST and
websocket alike: the method must be signed, the request's path must be one
of the signed paths or lie below one (compared as text, never as a regular
expression: a signed ``/v2/queues/a.b/messages`` does not grant
``/v2/queues/aXb/messages``), the project must be named and signed, and the
signature must verify and not be expired.

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
    ``verify_request``'s check; this compares the signature alone."""
    try:
        moment = parse_expires(expires)
    except InvalidExpires:
        return False
    if moment <= (now or dt.datetime.now(dt.UTC)):
        return False
    expected = signature(secret_key, paths, methods, project, moment)
    return hmac.compare_digest(expected, str(given_signature or ""))


def path_covered(signed_paths: Iterable[str], path: str) -> bool:
    """Whether ``path`` is a signed path or lies below one (a further segment).

    Text comparison on purpose. The reference searched each signed path as a
    regular expression anywhere in the request path, so the ``.`` a queue
    name may contain matched any character and a signature for one queue
    could reach another."""
    for signed in signed_paths:
        signed = signed.rstrip("/")
        if signed and (path == signed or path.startswith(signed + "/")):
            return True
    return False


def verify_request(secret_keys: Iterable[str], *, method: str, path: str,
                   given_signature: str, paths: list[str], methods: list[str],
                   project: str | None, expires: str, now: dt.datetime | None = None) -> bool:
    """Whether a pre-signed request may be served (module docstring).

    ``secret_keys`` are the keys that verify (the current one and those being
    rotated out). ``path`` is the resource the request acts on (REST: the
    request path; websocket: the queue's messages path). A request that names
    no project is refused: its identity would otherwise fall to a header
    nobody signed.
    """
    if not given_signature or not project:
        return False
    if method not in methods or not path_covered(paths, path):
        return False
    return any(verify(key, given_signature, paths, methods, project, expires, now)
               for key in secret_keys if key)

"""Time helpers: aware UTC datetimes in code, ISO 8601 on the wire.

Storage keeps instants as float seconds since the epoch (cheap to compare in
SQL on both PostgreSQL and SQLite); convert with these helpers at the edges.
"""

from __future__ import annotations

import datetime as dt
import time

UTC = dt.UTC


def utcnow() -> dt.datetime:
    """The current time as an aware UTC datetime."""
    return dt.datetime.now(UTC)


def now_epoch() -> float:
    """The current time as float seconds since the epoch (storage format)."""
    return time.time()


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


def isotime(moment: dt.datetime | float) -> str:
    """ISO 8601 with second resolution and a Z suffix, as Zaqar shows times."""
    if not isinstance(moment, dt.datetime):
        moment = from_epoch(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(since_epoch: float, now: float | None = None) -> int:
    """Whole seconds elapsed since ``since_epoch`` (never negative)."""
    now = now_epoch() if now is None else now
    return max(0, int(now - since_epoch))

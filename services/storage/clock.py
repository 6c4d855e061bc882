"""The storage workers' single source of "now".

Every controller reads the time through ``now()`` (float epoch seconds, the
storage format of ``herald.common.timeutils``) and passes it to SQL as a
parameter; nothing asks the database server for its clock. That keeps expiry
decisions consistent within one operation and lets tests move time forward
by patching this one function instead of sleeping. Must not hold state.
"""

from __future__ import annotations

from herald.common import timeutils


def now() -> float:
    return timeutils.now_epoch()

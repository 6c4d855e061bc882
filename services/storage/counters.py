"""The claim counters of ``/metrics``: claimed messages and empty claims, once committed.

``claims`` wraps ``ClaimController.create``: a claim that took messages adds
them to ``herald_messages_claimed_total``, one that found none adds one to
``herald_empty_claims_total``, when its transaction commits (at the end of
a coalesced batch's shared transaction, or at once). ``dead_lettered``
counts messages moved to a dead-letter queue the same way. Counting only:
it must not change what the claim does or returns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from herald.common import metrics

F = TypeVar("F", bound=Callable[..., dict[str, Any]])


def claims(create: F) -> F:
    @functools.wraps(create)
    def counted(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = create(self, *args, **kwargs)
        taken = len(result["messages"])
        if taken:
            metrics.after_commit(self._db, metrics.MESSAGES_CLAIMED, taken)
        else:
            metrics.after_commit(self._db, metrics.EMPTY_CLAIMS, 1)
        return result

    return counted  # type: ignore[return-value]


def dead_lettered(db: Any, moved: int) -> None:
    metrics.after_commit(db, metrics.MESSAGES_DEAD_LETTERED, moved)

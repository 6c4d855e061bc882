"""What every storage operation on a worker runs inside: retries, 503s, audit.

``guarded(sentence, audit)`` wraps a method ``(self, ctxt, **kwargs)`` of an
object with a ``_db`` (the endpoint, the batch runner). The wrapper

* sets the request id for the worker's log lines;
* retries the whole operation when the database aborted its transaction to
  break a deadlock, a serialization conflict or a lock timeout (up to four
  runs, jittered; PostgreSQL SQLSTATEs and SQLite's "database is locked");
* turns an unreachable database (OperationalError, InterfaceError, and the
  PendingRollbackError of a shared transaction that lost its connection)
  into ``ServiceUnavailable("<sentence> Please try again in a few
  seconds.")`` -- the sentence is the operation's own, from the table of
  operations (``herald.common.rpc.operations``), never worded here;
* lets typed ``herald.common.errors`` and ``SharedTransactionFailed`` (a
  batch about to run again) through unchanged, and logs anything else as a
  storage bug before raising it;
* with ``audit``, writes one INFO line per committed write, with its request
  id: the trail an operator greps for. Reads stay silent: they are most of
  the traffic and change nothing.

Thread-safety: stateless; the retry policy is built per call because
tenacity's ``Retrying`` keeps per-run state.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity
from sqlalchemy import exc as sa_exc

from herald.common import errors
from herald.common.context import RequestContext, set_current_request_id
from herald.common.rpc.operations import RETRY_HINT
from herald.storage.engine import Database, SharedTransactionFailed

LOG = logging.getLogger("herald.storage.endpoint")  # the name operators grep for

F = TypeVar("F", bound=Callable[..., Any])

# PostgreSQL SQLSTATEs worth retrying the whole transaction for.
_RETRYABLE_PG = {"40001", "40P01", "55P03"}


def is_retryable(exc: BaseException) -> bool:
    """A transaction the database aborted on purpose, worth running again."""
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_PG:
        return True
    return "database is locked" in str(orig or "")


def log_done(db: Database, ctxt: RequestContext, msg: str, *args: Any) -> None:
    """A write's audit line, with its request id, once the write is committed.

    Inside a coalesced batch's shared transaction that is at its commit:
    lines written before it sat inside the queue locks a batch of posts
    holds (every other poster of those queues waited for them), and said
    "done" before the write was durable."""
    request_id = getattr(ctxt, "request_id", "-") or "-"

    def emit() -> None:
        set_current_request_id(request_id)
        LOG.info(msg, *args)

    db.after_commit(emit)


def guarded(sentence: str, audit: bool = False) -> Callable[[F], F]:
    """Wrap an operation; ``sentence`` is its 503 sentence (see the module)."""
    unavailable = f"{sentence} {RETRY_HINT}"

    def decorate(func: F) -> F:
        name = func.__name__

        @functools.wraps(func)
        def wrapper(self: Any, ctxt: RequestContext, **kwargs: Any) -> Any:
            set_current_request_id(getattr(ctxt, "request_id", "-") or "-")
            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception(is_retryable),
                stop=tenacity.stop_after_attempt(4),
                wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.2),
                reraise=True,
            )
            started = time.monotonic()
            try:
                result = retrying(func, self, ctxt, **kwargs)
            except (errors.HeraldError, SharedTransactionFailed):
                raise  # a client's error; a batch about to run again (batch)
            # PendingRollbackError: an earlier statement of the same (shared,
            # batched) transaction lost the connection; this operation never
            # ran and the whole transaction is rolled back -- unavailable, not a bug.
            except (sa_exc.OperationalError, sa_exc.InterfaceError,
                    sa_exc.PendingRollbackError) as exc:
                LOG.warning("storage operation %s failed: %s", name, exc)
                raise errors.ServiceUnavailable(unavailable) from exc
            except Exception:
                LOG.exception("storage operation %s failed", name)
                raise
            if audit:
                log_done(self._db, ctxt, "%s %s/%s done in %.1f ms", name,
                         ctxt.project_id, kwargs.get("queue", "-"),
                         1000.0 * (time.monotonic() - started))
            return result

        return wrapper  # type: ignore[return-value]

    return decorate

"""A storage operation whose transaction lost its connection is a 503, not a 500.

Found by the PostgreSQL fault scenario (tests/faults/test_postgres.py): when
``pg_terminate_backend`` killed the connection of a batched (shared)
transaction, the first operation failed with OperationalError (503), and the
next ones in the same transaction with SQLAlchemy's PendingRollbackError,
which the endpoint answered as a storage bug (500) although nothing of them
had run and the transaction was rolled back.
"""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from herald.common import errors
from herald.common.context import RequestContext
from herald.storage.endpoint import _rpc


class _Endpoint:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @_rpc("Messages could not be enqueued.")
    def message_post(self, ctxt: RequestContext) -> None:
        raise self.exc


def test_pending_rollback_after_a_lost_connection_is_503() -> None:
    exc = sa_exc.PendingRollbackError(
        "Can't reconnect until invalid transaction is rolled back.")
    with pytest.raises(errors.ServiceUnavailable, match="could not be enqueued"):
        _Endpoint(exc).message_post(RequestContext(project_id="p"))


def test_a_real_bug_is_still_raised_as_is() -> None:
    with pytest.raises(KeyError):
        _Endpoint(KeyError("x")).message_post(RequestContext(project_id="p"))

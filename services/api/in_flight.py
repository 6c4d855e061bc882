"""The requests a REST API service is answering, and how a stopping one drains them.

``InFlight`` is the set of requests being handled (their handlers), shared
by an ``APIService`` and its handlers. ``Draining`` is the handlers' side,
mixed into ``BaseHandler``: once the service drains (``InFlight.draining``,
from SIGTERM on) every answer says ``Connection: close`` and its connection
closes after it, so keep-alive clients take their next request elsewhere;
at the drain deadline ``InFlight.abandon`` answers every request still
running 503, and whatever its handler writes later is dropped (issue 26:
never a reset, never a logged 500).

Must not handle requests, know routes or storage. Thread-safety: used on
the service's event loop only.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from herald.common import errors

#: What a request still running at the drain deadline is answered.
STOPPING = "The service is stopping. Please try again in a few seconds."


class InFlight:
    """The requests being handled, so a stopping service can let them
    finish (and answer those still running at its deadline)."""

    def __init__(self) -> None:
        self.handlers: set[Draining] = set()
        #: Set by a stopping service (``APIService.stop``).
        self.draining = False

    @property
    def count(self) -> int:
        return len(self.handlers)

    def abandon(self) -> None:
        """Answer every request still in flight 503 now."""
        for handler in list(self.handlers):
            handler.abandon()


class Draining(tornado.web.RequestHandler):
    """A handler a stopping service can close connections after and cut short."""

    _in_flight: InFlight
    #: Answered 503 by ``abandon``: later writes are dropped.
    _abandoned = False

    def abandon(self) -> None:
        """Answer 503 now, whatever the handler is waiting for."""
        if self._finished:
            return
        self.clear()
        self.send_error(503, exc_info=(errors.ServiceUnavailable,
                                       errors.ServiceUnavailable(STOPPING), None))
        self._abandoned = True

    def write(self, chunk: Any) -> None:
        if self._abandoned:
            return  # answered 503 already (abandon)
        super().write(chunk)

    def finish(self, chunk: Any = None) -> Any:
        if self._abandoned:
            return None  # answered 503 already (abandon)
        if self._in_flight.draining and not self._headers_written:
            # The answer says Connection: close and the connection closes
            # after it (Tornado's flag, read by HTTP1Connection.write_headers).
            connection = self.request.connection
            if hasattr(connection, "_disconnect_on_finish"):
                connection._disconnect_on_finish = True
        return super().finish(chunk)

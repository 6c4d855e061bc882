"""Closing a Tornado server's listening sockets without resetting anyone.

Closing a listening socket makes the kernel reset every connection still
waiting in its backlog: connections it completed while the event loop was
busy, whose clients have usually sent their request already. Both HTTP
services stop through ``stop_accepting``, which takes those connections in
first and serves them like any other.

This module only closes listeners; waiting for requests and closing
connections is each service's own ``stop()``.
"""

from __future__ import annotations

import logging

import tornado.tcpserver

LOG = logging.getLogger(__name__)


def stop_accepting(server: tornado.tcpserver.TCPServer) -> None:
    """Accept what waits in ``server``'s backlogs, then close its listeners.

    Runs synchronously on the loop, so only a connection the kernel
    completes between the last ``accept()`` and the close (microseconds)
    can still be reset.
    """
    # TCPServer keeps its listeners by fd; they are non-blocking.
    for sock in list(server._sockets.values()):
        while True:
            try:
                connection, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:  # that client gave up already
                continue
            except OSError as exc:  # the listener is unusable: nothing to take
                LOG.debug("backlog not drained: %s", exc)
                break
            # What the listener's own accept callback does with it.
            server._handle_connection(connection, address)
    server.stop()

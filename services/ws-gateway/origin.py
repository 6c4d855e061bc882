"""The WebSocket handshake's origin check (``[ws_gateway] allowed_origins``).

Browsers let any page open a websocket to any host; the ``Origin`` header
of the handshake is the server's only way to know which page asks. The
gateway accepts:

* handshakes without ``Origin`` -- non-browser clients (python-zaqarclient,
  websocket libraries), which have no cross-site concern;
* its own origin -- the ``/console`` page it serves (``Origin`` matches the
  ``Host`` the browser connected to);
* the origins listed in ``allowed_origins``, or any with ``*``.

Anything else gets HTTP 403 from Tornado. The browser only reports a close
without reason to the page (the console explains the likely cause), so
``refused`` logs one line naming the origin and the option to change.

The decision is ``herald.common.edge.origins`` (the same allow-list rules
as REST's CORS); this module is the gateway's side of it: the name the
handshake code calls and the operator's log line. It does not touch the
connection or the frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from herald.common.edge.origins import handshake_allowed, splittable

LOG = logging.getLogger(__name__)

__all__ = ["origin_allowed", "refused", "splittable"]


def origin_allowed(origin: str, host: str, allowed: Iterable[str]) -> bool:
    """The decision for one handshake's ``Origin`` header (``herald.common.edge.origins``)."""
    return handshake_allowed(origin, host, allowed)


def refused(origin: str, host: str) -> None:
    """Log a refused handshake so the operator learns what to configure."""
    LOG.warning("websocket handshake from origin %s to %s refused with 403: add it to "
                "[ws_gateway] allowed_origins (or set * for any origin) to let that "
                "page connect", origin, host or "?")

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

This module decides; it does not touch the connection or the frames.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterable

LOG = logging.getLogger(__name__)


def normalize_origin(origin: str) -> str:
    """Origins compare case-insensitively and without a trailing slash."""
    return origin.strip().rstrip("/").lower()


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` names the host:port the browser connected to.

    Recent Tornado versions accept this case before asking ``check_origin``;
    older ones (and proxies that drop ``Sec-Fetch-Site``) ask, so it is
    checked here too. The scheme is not compared: behind a TLS-terminating
    proxy the gateway cannot know it.
    """
    return bool(host) and urllib.parse.urlsplit(origin.strip()).netloc.lower() == host.lower()


def splittable(origin: str) -> bool:
    """Whether urllib can split ``origin`` at all: unbalanced IPv6 brackets
    make it raise, and Tornado's own cross-origin check with it (a 500)."""
    try:
        urllib.parse.urlsplit(origin.strip())
    except ValueError:
        return False
    return True


def origin_allowed(origin: str, host: str, allowed: Iterable[str]) -> bool:
    """The decision for one handshake's ``Origin`` header."""
    if same_origin(origin, host):
        return True
    wanted = normalize_origin(origin)
    for entry in allowed:
        entry = entry.strip()
        if entry == "*" or (entry and normalize_origin(entry) == wanted):
            return True
    return False


def refused(origin: str, host: str) -> None:
    """Log a refused handshake so the operator learns what to configure."""
    LOG.warning("websocket handshake from origin %s to %s refused with 403: add it to "
                "[ws_gateway] allowed_origins (or set * for any origin) to let that "
                "page connect", origin, host or "?")

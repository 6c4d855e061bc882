"""The browser-origin allow-list, for REST CORS and the websocket handshake.

``[api] cors_allowed_origins`` and ``[ws_gateway] allowed_origins`` are the
same kind of list: origins compared case-insensitively and without a
trailing slash, ``*`` for any. REST uses the answer to add CORS headers
(``herald.api.cors``); the gateway to accept or refuse (403) a handshake,
where the page the gateway serves itself (same host) is accepted too.

Decisions only: nothing here touches a request, a response or a log.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable


def normalize_origin(origin: str) -> str:
    """Origins compare case-insensitively and without a trailing slash."""
    return origin.strip().rstrip("/").lower()


def listed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether ``origin`` (an Origin header value) is in the configured list."""
    wanted = normalize_origin(origin)
    for entry in allowed:
        entry = entry.strip()
        if entry == "*" or (entry and normalize_origin(entry) == wanted):
            return True
    return False


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


def handshake_allowed(origin: str, host: str, allowed: Iterable[str]) -> bool:
    """The decision for one websocket handshake's ``Origin`` header."""
    return same_origin(origin, host) or listed(origin, allowed)

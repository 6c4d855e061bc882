"""Websocket authentication (websocket.md §4) and pre-signed requests (§4.1).

* ``ConnectionAuth`` is the per-connection state: authenticated or not, an
  ``authenticate`` in flight, the Keystone identity, and the timer that
  closes the connection with 4003 when the token expires.
* ``signed_request_valid`` checks the ``URL-*`` headers of one request: the
  action's method must be signed, the signed paths must cover the queue the
  body names (stricter than the reference, as the spec recommends), and the
  signature must verify and not be expired.

Token validation itself is ``herald.common.keystone`` (keystonemiddleware).
This module does not build replies or route actions (``dispatch`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from typing import Any

from oslo_config import cfg

from herald.common import signing

LOG = logging.getLogger(__name__)

CLOSE_AUTH_EXPIRED = 4003
EXPIRED_REASON = "Authentication expired."

#: Actions a pre-signed request may perform, and the method that must be signed.
SIGNED_ACTIONS = {
    "message_list": "GET",
    "message_get": "GET",
    "message_get_many": "GET",
    "message_post": "POST",
    "message_delete": "DELETE",
    "message_delete_many": "DELETE",
}


@dataclasses.dataclass
class ConnectionAuth:
    authenticated: bool = False
    in_flight: bool = False
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def state_of(connection: Any) -> ConnectionAuth:
    """The auth state of ``connection`` (a fresh, unattached one when None)."""
    if connection is None:
        return ConnectionAuth()
    state = getattr(connection, "auth_state", None)
    if state is None:
        state = ConnectionAuth()
        connection.auth_state = state
    return state


def expire_later(connection: Any, state: ConnectionAuth) -> None:
    """Close ``connection`` with 4003 when ``state.expires_at`` passes."""
    state.cancel_timer()
    if connection is None or state.expires_at is None:
        return
    delay = (state.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
    loop = asyncio.get_running_loop()

    def expire() -> None:
        state.authenticated = False
        state.timer = None
        LOG.info("ws connection %s: token expired, closing with %d",
                 getattr(connection, "connection_id", "?"), CLOSE_AUTH_EXPIRED)
        connection.close(CLOSE_AUTH_EXPIRED, EXPIRED_REASON)

    state.timer = loop.call_later(max(0.0, delay), expire)


def _as_list(value: Any) -> list[str] | None:
    # websocket.md §4.1: lists here (not comma strings as over REST).
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def signed_request_valid(conf: cfg.ConfigOpts, action: str, headers: dict[str, Any],
                         body: dict[str, Any]) -> bool:
    key = conf.signed_url.secret_key
    method = SIGNED_ACTIONS.get(action)
    if not key or method is None:
        return False
    methods = _as_list(headers.get("URL-Methods"))
    paths = _as_list(headers.get("URL-Paths"))
    if methods is None or paths is None or method not in methods:
        return False
    queue = body.get("queue_name")
    if not isinstance(queue, str):
        return False
    target = f"/v2/queues/{queue}/messages"
    covered = False
    for path in paths:
        try:
            covered = re.search(path, target) is not None
        except re.error:
            covered = False
        if covered:
            break
    if not covered:
        return False
    project = headers.get("X-Project-ID")
    expires = headers.get("URL-Expires")
    if not isinstance(expires, str):
        return False
    return signing.verify(key, str(headers.get("URL-Signature") or ""), paths, methods,
                          project if isinstance(project, str) else None, expires)

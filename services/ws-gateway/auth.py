"""Websocket authentication (websocket.md §4) and pre-signed requests (§4.1).

* ``ConnectionAuth`` is the per-connection state: authenticated or not, an
  ``authenticate`` in flight, the Keystone identity (user, project, roles:
  every action of the connection runs in that project), the token (checked
  again now and then, so a revoked one stops working), and the timer that
  closes the connection with 4003 when the token expires.
* ``signed_request_valid`` checks the ``URL-*`` headers of one request with
  the same rule as REST (``signing.verify_request``): the action's method
  must be signed, the signed paths must cover the queue the body names
  (stricter than the reference, as the spec recommends), the project must
  be signed, and the signature must verify and not be expired.

Token validation itself is ``herald.common.keystone`` (keystonemiddleware).
This module does not build replies or route actions (``dispatch`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from typing import Any

from oslo_config import cfg

from herald.common import keystone, signing
from herald.common.config import signed_url

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
    #: The token's project: every action of the connection runs in it.
    project_id: str | None = None
    roles: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    timer: asyncio.TimerHandle | None = None
    #: The token itself, kept to check it again (a revoked token stops
    #: working within ``[ws_gateway] token_revalidate_interval``).
    token: str | None = None
    #: When the token was last confirmed (``time.monotonic()``).
    validated_at: float = 0.0

    def accept(self, token: str, result: keystone.Result) -> None:
        """Take the identity of a token the middleware accepted."""
        self.authenticated = True
        self.token = token
        self.user_id, self.project_id, self.roles = (result.user_id, result.project_id,
                                                     result.roles)
        self.expires_at = result.expires_at
        self.validated_at = time.monotonic()

    def forget(self) -> None:
        """Back to unauthenticated (a refused token, a revoked one)."""
        self.cancel_timer()
        self.authenticated = False
        self.token = self.user_id = self.project_id = self.expires_at = None
        self.roles = ()

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
    """Whether the ``URL-*`` headers sign this action on the queue its body names.

    The same check as over REST (``signing.verify_request``), on the path
    ``/v2/queues/<queue_name>/messages`` the action acts on."""
    method = SIGNED_ACTIONS.get(action)
    methods = _as_list(headers.get("URL-Methods"))
    paths = _as_list(headers.get("URL-Paths"))
    queue = body.get("queue_name")
    project = headers.get("X-Project-ID")
    expires = headers.get("URL-Expires")
    signature = headers.get("URL-Signature")
    if (method is None or methods is None or paths is None or not isinstance(queue, str)
            or not isinstance(project, str) or not isinstance(expires, str)
            or not isinstance(signature, str)):
        return False
    return signing.verify_request(
        signed_url.verifying_keys(conf), method=method, path=f"/v2/queues/{queue}/messages",
        given_signature=signature, paths=paths, methods=methods, project=project,
        expires=expires)

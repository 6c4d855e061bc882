"""Request envelope handling: decode, validate, authenticate, route, reply.

``Dispatcher.handle(frame)`` turns one incoming frame into the one reply
frame the spec requires (websocket.md §1-4), in the request's frame kind,
with the response envelope::

    {"request": {"action", "body", "headers", "api": "v2"},
     "headers": {"status": <int>}, "body": <action-specific>}

Order of checks (it decides which error wins): decode -> object check ->
schema (unknown action / schema failure) -> authentication -> handler.

Authentication (``[DEFAULT] auth_strategy``): without a strategy every
action is processed and ``authenticate`` is answered 200 "Authentified."
(the reference would send nothing, which hangs python-zaqarclient). With
``keystone``, ``authenticate`` validates ``X-Auth-Token`` through
keystonemiddleware and every other action of a connection that has not
authenticated is 403 "Not authentified." -- unless it is a valid pre-signed
request (``auth``), which is checked whenever ``URL-Signature`` is present.
An authenticated connection acts in its token's project with its token's
roles: a frame whose ``X-Project-ID`` names another project is 403 (Zaqar
bug 2161402 let any authenticated user reach every project). The token is
checked again after ``[ws_gateway] token_revalidate_interval``, so a revoked
one stops working; a refused ``authenticate`` ends the earlier identity.
The only per-connection state is that authentication (kept on the
connection, ``auth.ConnectionAuth``); the dispatcher itself is shared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from oslo_config import cfg

from herald.common import keystone, tracing
from herald.common.context import RequestContext, new_request_id, set_current_request_id
from herald.common.rpc.storage_api import StorageAPI
from herald.ws_gateway import auth, codec, schemas
from herald.ws_gateway.actions import ActionRequest, Actions, error_reply

LOG = logging.getLogger(__name__)

_NULL_REQUEST = {"action": None, "body": {}, "headers": {}, "api": "v2"}

#: The 403 of a frame that names another project than its connection's token.
FOREIGN_PROJECT = ("Not authorized: X-Project-ID names another project than the one "
                   "this connection authenticated for.")


def envelope(request: dict[str, Any], status: int, body: Any) -> dict[str, Any]:
    return {"request": request, "headers": {"status": status}, "body": body}


def _request_span(action: str, headers: dict[str, Any], binary: bool) -> tracing.Span | None:
    """The SERVER span of one request frame while tracing, continuing the
    client's trace when the frame's headers carry a ``traceparent``."""
    if not tracing.active():
        return None
    parent = headers.get("traceparent")
    return tracing.start(f"ws {action}", "server", parent if isinstance(parent, str) else "",
                         {"network.protocol.name": "websocket", "herald.ws.action": action,
                          "herald.ws.frame": "binary" if binary else "text"})


class Dispatcher:
    """Stateless: one instance serves every connection of a gateway."""

    def __init__(self, storage: StorageAPI, conf: cfg.ConfigOpts) -> None:
        self._actions = Actions(storage, conf)
        self._conf = conf

    async def handle(self, frame: str | bytes, connection: Any = None) -> str | bytes:
        """The encoded reply frame for one request frame (same frame kind);
        ``connection`` is the sender (subscription actions may subscribe it)."""
        reply = await self.handle_payload(frame, connection)
        return codec.encode(reply, isinstance(frame, bytes))

    def stopping_reply(self, frame: str | bytes) -> str | bytes:
        """The 503 reply to ``frame`` that a stopping gateway gives a request
        still running at its drain deadline (same frame kind)."""
        try:
            payload = codec.decode(frame)
        except codec.DecodeError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        request = {"action": payload.get("action"), "body": payload.get("body", {}),
                   "headers": payload.get("headers", {}), "api": "v2"}
        return codec.encode(envelope(request, 503, {
            "error": "The service is stopping. Please try again in a few seconds."}),
            isinstance(frame, bytes))

    async def handle_payload(self, frame: str | bytes,
                             connection: Any = None) -> dict[str, Any]:
        try:
            payload = codec.decode(frame)
        except codec.DecodeError as exc:
            return envelope(dict(_NULL_REQUEST), 400, {"error": str(exc)})
        if not isinstance(payload, dict):
            return envelope(dict(_NULL_REQUEST), 400,
                            {"error": "Unexpected body type. Expected dict or dict like."})

        action = payload.get("action")
        request = {
            "action": action,
            "body": payload.get("body", {}),
            "headers": payload.get("headers", {}),
            "api": "v2",
        }
        try:
            schemas.validate(payload)
        except (schemas.InvalidAction, schemas.SchemaValidationFailed) as exc:
            return envelope(request, 400, {"error": str(exc)})

        if action == "authenticate":
            return await self._authenticate(request["headers"], connection)

        headers = request["headers"]
        state = auth.state_of(connection)
        roles: tuple[str, ...] = ()
        if isinstance(headers, dict) and headers.get("URL-Signature"):
            # A pre-signed request is judged by its signature alone, with or
            # without an auth strategy (as over REST); it acts in the signed
            # project.
            if not auth.signed_request_valid(self._conf, action, headers, request["body"]):
                return envelope(request, 403, {"error": "Not authentified."})
        elif self._conf.auth_strategy == "keystone":
            if not await self._still_authenticated(state):
                return envelope(request, 403, {"error": "Not authentified."})
            # The token's project, never the frame's (Zaqar bug 2161402): a
            # frame may repeat it, not name another.
            named = headers.get("X-Project-ID")
            if named is not None and named != state.project_id:
                LOG.warning("ws %s refused: the frame names project %r, the connection's "
                            "token is for %r", action, named, state.project_id)
                return envelope(request, 403, {"error": FOREIGN_PROJECT})
            headers = {**headers, "X-Project-ID": state.project_id}
            roles = state.roles

        handler = self._actions.handlers.get(action)
        if handler is None:
            # Known to the schema but without behaviour here (pools, flavors,
            # home doc, health, ping).
            return envelope(request, 400, {"error": f"{action} is not a valid action"})

        span = _request_span(action, headers, binary=isinstance(frame, bytes))
        ctxt = RequestContext(project_id=headers["X-Project-ID"],
                              client_id=headers["Client-ID"],
                              request_id=new_request_id(), roles=roles,
                              traceparent=span.traceparent if span is not None else "")
        # Each request runs in its own asyncio task, hence its own copy of the
        # context: setting the request id here cannot leak into other requests.
        set_current_request_id(ctxt.request_id)
        try:
            status, body = await handler(ActionRequest(action, ctxt, request["body"], headers,
                                                       binary=isinstance(frame, bytes),
                                                       connection=connection))
        except Exception as exc:  # every failure becomes a reply, never a dead socket
            status, body = error_reply(action, exc)
            if status >= 500:
                LOG.error("ws %s failed with %s: %s", action, status, body.get("exception"),
                          exc_info=status == 500)
        LOG.info("ws %s project=%s -> %s", action, ctxt.project_id, status)
        if span is not None:
            span.set("herald.ws.status", status)
            span.set("herald.request_id", ctxt.request_id)
            if status >= 500:
                span.fail(str(status))
            span.end()
        return envelope(request, status, body)

    async def _authenticate(self, headers: dict[str, Any], connection: Any) -> dict[str, Any]:
        """websocket.md §4: validate the token like an HTTP request would be."""
        echoed = {"action": "authenticate", "body": {}, "headers": {}, "api": "v2"}
        if self._conf.auth_strategy != "keystone":
            # No auth strategy: accept (the reference would send nothing,
            # which hangs python-zaqarclient).
            return envelope(echoed, 200, {"message": "Authentified."})
        state = auth.state_of(connection)
        if state.in_flight:
            return envelope(echoed, 403, {"error": "Not authentified."})
        state.in_flight = True
        try:
            result = await self._validate(headers)
        finally:
            state.in_flight = False
        if not result.ok or not result.project_id:
            # A refused token ends any earlier authentication of the
            # connection; a token scoped to no project has no queues.
            LOG.info("ws authenticate refused (%s)", result.status)
            state.forget()
            status = result.status if not result.ok else 401
            return envelope(echoed, status, {"error": "Authentication failed."})
        # Re-authentication replaces the identity and restarts the timer.
        state.accept(str(headers.get("X-Auth-Token")), result)
        auth.expire_later(connection, state)
        return envelope(echoed, 200, {"message": "Authentified."})

    async def _still_authenticated(self, state: auth.ConnectionAuth) -> bool:
        """Whether the connection's token still holds, checking it with Keystone
        again once ``[ws_gateway] token_revalidate_interval`` has passed."""
        if not state.authenticated or state.token is None:
            return False
        interval = self._conf.ws_gateway.token_revalidate_interval
        if time.monotonic() - state.validated_at < interval:
            return True
        token = state.token
        result = await self._validate({"X-Auth-Token": token})
        if state.token != token:  # re-authenticated meanwhile: that one decides
            return state.authenticated
        if not result.ok or result.project_id != state.project_id:
            LOG.info("ws connection's token no longer valid (%s): not authenticated",
                     result.status)
            state.forget()
            return False
        state.validated_at = time.monotonic()
        return True

    async def _validate(self, headers: dict[str, Any]) -> keystone.Result:
        """keystonemiddleware's verdict, off the event loop (it may call Keystone)."""
        try:
            validator = keystone.validator(self._conf)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, validator.validate, dict(headers))
        except Exception:
            LOG.exception("ws authenticate: token validation failed")
            return keystone.Result(status=500)

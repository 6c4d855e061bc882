"""Keystone token validation through keystonemiddleware's ``auth_token``.

Both edges (the REST API and the websocket ``authenticate`` action) validate
tokens exactly like an OpenStack WSGI service would: the request's headers
become a WSGI environment (``HTTP_<NAME>``) and go through
``keystonemiddleware.auth_token.AuthProtocol``, configured from the
``[keystone_authtoken]`` group of Herald's own ``ConfigOpts``. The middleware
strips identity headers a client may have forged (``X-Project-Id``,
``X-Roles``, ...) and sets them from the validated token; what it lets
through is read back from the environment.

``Validator.validate`` is blocking (the middleware calls Keystone over HTTP
when a token is not cached): callers on an event loop run it in an executor.
This module must not know about Tornado, routes or websocket frames.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oslo_config import cfg

LOG = logging.getLogger(__name__)

GROUP = "keystone_authtoken"


@dataclasses.dataclass(frozen=True)
class Result:
    """The middleware's verdict on one set of headers."""

    status: int
    project_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    #: When the token stops being valid (aware UTC), if the token says.
    expires_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status < 300


def _environ(headers: Mapping[str, str], method: str, path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "herald",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        if not isinstance(value, str):
            continue
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ[f"HTTP_{key}"] = value
    return environ


def _expiry(environ: Mapping[str, Any]) -> dt.datetime | None:
    info = environ.get("keystone.token_info") or {}
    text = (info.get("token") or {}).get("expires_at") or (
        ((info.get("access") or {}).get("token") or {}).get("expires"))
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        LOG.warning("token expiry %r is not ISO 8601; ignoring it", text)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _passed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    # The application behind the middleware: reached only with a valid token.
    environ["herald.authenticated"] = True
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]


class Validator:
    """One ``AuthProtocol`` (it keeps its token cache and Keystone session)."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        from keystonemiddleware import auth_token

        self._middleware = auth_token.AuthProtocol(
            _passed, {"oslo_config_config": conf, "delay_auth_decision": "false"})

    def validate(self, headers: Mapping[str, str], method: str = "GET",
                 path: str = "/") -> Result:
        environ = _environ(headers, method, path)
        status: list[str] = []

        def start_response(text: str, _headers: Any, _exc_info: Any = None) -> None:
            status.append(text)

        body = self._middleware(environ, start_response)
        for _chunk in body:  # let the response complete (and close) as WSGI wants
            pass
        code = int(status[0].split()[0]) if status else 500
        if code >= 300 or not environ.get("herald.authenticated") or (
                environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed"):
            return Result(status=code if code >= 300 else 401)
        roles = tuple(r.strip() for r in environ.get("HTTP_X_ROLES", "").split(",")
                      if r.strip())
        return Result(status=200, project_id=environ.get("HTTP_X_PROJECT_ID"),
                      user_id=environ.get("HTTP_X_USER_ID"), roles=roles,
                      expires_at=_expiry(environ))


_validators: dict[int, tuple[cfg.ConfigOpts, Validator]] = {}
_lock = threading.Lock()


def validator(conf: cfg.ConfigOpts) -> Validator:
    """The validator of ``conf`` (built on first use, then shared)."""
    with _lock:
        entry = _validators.get(id(conf))
        if entry is None or entry[0] is not conf:
            entry = (conf, Validator(conf))
            _validators[id(conf)] = entry
        return entry[1]

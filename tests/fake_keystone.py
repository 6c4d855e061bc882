"""A local fake Keystone (identity v3) for the authentication tests.

Herald validates tokens with keystonemiddleware's ``auth_token``; the tests
replace Keystone itself, at the HTTP boundary, with this small server, so the
middleware runs unmodified: version discovery, the service's own password
login (``POST /v3/auth/tokens``) and user-token validation (``GET
/v3/auth/tokens`` with ``X-Subject-Token``). Tokens are registered by the
test with their project, roles and expiry; any other token is 404, which is
how Keystone answers an unknown or revoked one.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from oslo_config import cfg

SERVICE_TOKEN = "service-token"


class FakeKeystone:
    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.validations = 0
        keystone = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None,
                       ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?")[0].rstrip("/")
                if path == "":
                    self._reply(300, {"versions": {"values": [keystone.version()]}})
                elif path == "/v3":
                    self._reply(200, {"version": keystone.version()})
                elif path == "/v3/auth/tokens":
                    keystone.validations += 1
                    subject = self.headers.get("X-Subject-Token", "")
                    if self.headers.get("X-Auth-Token") != SERVICE_TOKEN:
                        self._reply(401, {"error": {"code": 401}})
                    elif subject in keystone.tokens:
                        self._reply(200, keystone.tokens[subject],
                                    {"X-Subject-Token": subject})
                    else:
                        self._reply(404, {"error": {"code": 404, "message": "not found"}})
                else:
                    self._reply(404, {"error": {"code": 404}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.rstrip("/") == "/v3/auth/tokens":
                    token = keystone.make_token("service", ["service"],
                                                dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
                    self._reply(201, token, {"X-Subject-Token": SERVICE_TOKEN})
                else:
                    self._reply(404, {"error": {"code": 404}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-keystone")
        self._thread.start()

    def version(self) -> dict[str, Any]:
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.url + "/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def make_token(self, project: str | None, roles: list[str], expires: dt.datetime,
                   user: str | None = None) -> dict[str, Any]:
        """A v3 token body (the shape Keystone returns); ``project`` None makes a
        domain-scoped token, which names no project."""
        now = dt.datetime.now(dt.UTC)
        domain = {"id": "default", "name": "Default"}
        user = user or f"user-{project or 'domain'}"
        scope: dict[str, Any] = ({"project": {"id": project, "name": project, "domain": domain}}
                                 if project is not None else {"domain": domain})
        return {"token": {
            "methods": ["password"],
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "audit_ids": [uuid.uuid4().hex[:22]],
            "user": {"id": user, "name": user, "domain": domain},
            **scope,
            "roles": [{"id": uuid.uuid4().hex, "name": role} for role in roles],
            "catalog": [{"type": "identity", "name": "keystone", "id": "identity",
                         "endpoints": [{"id": uuid.uuid4().hex, "interface": interface,
                                        "region": "RegionOne", "region_id": "RegionOne",
                                        "url": self.url + "/v3"}
                                       for interface in ("public", "internal", "admin")]}],
        }}

    def issue(self, project: str, roles: list[str] | None = None,
              lifetime: float = 3600.0) -> str:
        """A new valid user token scoped to ``project``."""
        token_id = uuid.uuid4().hex
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
        self.tokens[token_id] = self.make_token(project, roles or ["member"], expires)
        return token_id

    def issue_domain_scoped(self, roles: list[str] | None = None) -> str:
        """A valid token scoped to a domain, not a project."""
        token_id = uuid.uuid4().hex
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        self.tokens[token_id] = self.make_token(None, roles or ["member"], expires)
        return token_id

    def revoke(self, token: str) -> None:
        """Keystone forgets the token: validating it is 404 from now on."""
        self.tokens.pop(token, None)

    def configure(self, conf: cfg.ConfigOpts) -> None:
        """Point Herald's ``[keystone_authtoken]`` at this server."""
        conf.set_override("auth_strategy", "keystone")
        # keystonemiddleware registers its options on first use; register the
        # ones set here now (same definitions) so overrides can be applied.
        from keystoneauth1 import loading
        from keystonemiddleware.auth_token import _opts

        conf.register_opts(_opts._OPTS, group="keystone_authtoken")
        loading.register_auth_conf_options(conf, "keystone_authtoken")
        conf.set_override("auth_type", "v3password", group="keystone_authtoken")
        plugin_opts = loading.get_auth_plugin_conf_options("v3password")
        conf.register_opts(plugin_opts, group="keystone_authtoken")
        values = {"auth_url": self.url + "/v3", "username": "herald", "password": "secret",
                  "user_domain_name": "Default", "project_name": "service",
                  "project_domain_name": "Default"}
        for name, value in values.items():
            conf.set_override(name, value, group="keystone_authtoken")
        conf.set_override("www_authenticate_uri", self.url, group="keystone_authtoken")
        # Every check reaches this server: no token cache between tests.
        conf.set_override("token_cache_time", -1, group="keystone_authtoken")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

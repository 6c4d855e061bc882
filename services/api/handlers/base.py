"""The request pipeline shared by every handler (rest-v2.md §0.1-0.5).

``BaseHandler.prepare`` runs, in the spec's order: routing checks (405 with
``Allow``), authentication or pre-signed URL (401 / 404, ``herald.api.auth``),
form content type (400), ``Accept`` (406), Client-ID (400),
project header (400), queue name (400), policy (403), and builds the
``RequestContext``. ``write_error`` turns every exception into the Zaqar error
body: ``HeraldError`` → its status and body; anything else → 500 with the
traceback logged. Handlers only implement the verbs they serve.

No resource logic here, and no direct storage access except through the
``StorageAPI`` given to the application.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.parse
from collections.abc import Awaitable
from typing import Any, TypeVar

import tornado.web
from oslo_config import cfg

from herald.api import auth, cors
from herald.api import errors as api_errors
from herald.api.in_flight import Draining, InFlight
from herald.api.query_string import QueryParams
from herald.common import errors, tracing
from herald.common.context import RequestContext, new_request_id, set_current_request_id
from herald.common.edge import headers as header_rules
from herald.common.edge.bodies import parse_json
from herald.common.rpc.operations import RETRY_HINT
from herald.common.rpc.storage_api import StorageAPI

LOG = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_ID_HEADER = "X-Openstack-Request-Id"
# An incoming request id is reused (so a caller can follow its own id through
# the logs) only when it is short and made of safe characters: it is echoed in
# a response header and written into every log line.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _json_default(value: Any) -> Any:
    # Message bodies posted over the websocket as msgpack may hold raw bytes,
    # which JSON cannot carry: show them as text when they are UTF-8, else as
    # base64, rather than failing the whole reply with a 500.
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dump_json(document: Any) -> str:
    return json.dumps(document, default=_json_default)


class _AnyMethod(tuple):
    def __contains__(self, item: object) -> bool:
        return True


class BaseHandler(Draining):
    """Pipeline, JSON replies and error mapping for every route."""

    #: HTTP methods the route implements (OPTIONS is always answered).
    ALLOWED: tuple[str, ...] = ()
    #: False only for the versions document at "/": no Client-ID or project.
    UNDER_V2 = True
    #: Served only when ``[DEFAULT] admin_mode`` is on (404 otherwise).
    ADMIN_MODE_ONLY = False
    #: Policy: the caller needs the ``admin`` role (403 otherwise).
    ADMIN_ROLE = False
    #: What a ``queue_name`` path segment names, for the refusal's title
    #: ("Invalid queue identification"); topic handlers say "topic".
    RESOURCE_KIND = "queue"
    #: Every method reaches ``prepare``, which authenticates before it answers
    #: 405 (Tornado's own check would answer 405 to a caller without a token),
    #: and unknown paths answer 404 even to methods Tornado does not know.
    SUPPORTED_METHODS = _AnyMethod()  # type: ignore[assignment]

    conf: cfg.ConfigOpts
    storage: StorageAPI

    def initialize(self, conf: cfg.ConfigOpts, storage: StorageAPI,
                   in_flight: InFlight, route_template: str = "") -> None:
        #: The route's template, the label of its metrics ("": no route matched).
        self.route_template = route_template
        self.conf = conf
        self.storage = storage
        self._in_flight = in_flight
        self._counted = False
        self._ctx: RequestContext | None = None
        self._query: QueryParams | None = None
        #: The request's SERVER span while tracing (``herald.common.tracing``).
        self._span: tracing.Span | None = None

    # -- plumbing -----------------------------------------------------------

    @property
    def request_id(self) -> str:
        # set_default_headers() runs before initialize(), so compute lazily.
        rid = getattr(self, "_request_id", None)
        if rid is None:
            incoming = self.request.headers.get(REQUEST_ID_HEADER, "")
            rid = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
            self._request_id = rid
        return rid

    def set_default_headers(self) -> None:
        # Called again by send_error's clear(), so errors carry the id too.
        self.set_header(REQUEST_ID_HEADER, self.request_id)
        self.set_header("Content-Type", "application/json")

    def compute_etag(self) -> str | None:
        # No ETag / If-None-Match 304s: Zaqar has none, and a cached listing
        # page or claim would hide state that changes without the URL changing.
        return None

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        # Tornado's default raises a bare 400 on invalid UTF-8 in the path; a
        # replacement character instead lets the queue-name check (400 with
        # the right title) or the not-found path (404) answer.
        return value.decode("utf-8", errors="replace")

    def _enter(self) -> None:
        if not self._counted:
            self._counted = True
            self._in_flight.handlers.add(self)
            if tracing.active():
                self._span = tracing.start(
                    f"{self.request.method} {self.route()}", "server",
                    self.request.headers.get("traceparent", ""), self._span_attributes())

    def _leave(self) -> None:
        if self._counted:
            self._counted = False
            self._in_flight.handlers.discard(self)
            if self._span is not None:
                status = self.get_status()
                self._span.set("http.response.status_code", status)
                if status >= 500:
                    self._span.fail(str(status))
                self._span.end()
                self._span = None

    def route(self) -> str:
        """The route template of this request (``/v2/queues/{queue_name}``),
        never the raw path: a span's name must not hold queue names."""
        if type(self) is NotFoundHandler:
            return "unknown"
        names = {value: name for name, value in self.path_kwargs.items() if value}
        segments = [urllib.parse.unquote(segment)
                    for segment in self.request.path.split("/")]
        # Path arguments come in path order: the first segment equal to one names it.
        route = []
        for segment in segments:
            name = names.pop(segment, None)
            route.append(f"{{{name}}}" if name else segment)
        return "/".join(route)

    def _span_attributes(self) -> dict[str, Any]:
        """HTTP server conventions (no query string: it may hold a signature)."""
        return {"http.request.method": self.request.method, "http.route": self.route(),
                "url.path": self.request.path, "url.scheme": self.request.protocol,
                "client.address": self.request.remote_ip,
                "user_agent.original": self.request.headers.get("User-Agent"),
                "herald.request_id": self.request_id}

    def on_finish(self) -> None:
        self._leave()

    def on_connection_close(self) -> None:
        self._leave()

    @property
    def ctx(self) -> RequestContext:
        assert self._ctx is not None, "prepare() builds the context"
        return self._ctx

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams.parse(self.request.query)
        return self._query

    def body_length(self) -> int:
        return len(self.request.body)

    def has_body(self) -> bool:
        return bool(self.request.body)

    def json_body(self) -> Any:
        return parse_json(self.request.body)

    def allowed_methods(self) -> list[str]:
        return [*self.ALLOWED, "OPTIONS"]

    # -- pipeline -----------------------------------------------------------

    async def prepare(self) -> None:
        set_current_request_id(self.request_id)
        self._enter()
        self.add_cors_headers()
        method = self.request.method or ""
        headers = self.request.headers
        if method == "OPTIONS" and "Access-Control-Request-Method" in headers:
            # A CORS preflight: browsers never attach credentials to one, and
            # it answers only which methods exist (docs/security.md).
            self._reply_options()
            return
        # Steps 1-2: Keystone token or pre-signed URL (401 / 404), before any
        # other answer, so that nothing about the routes reaches a caller
        # without credentials.
        identity = await auth.authenticate(self.conf, method, self.request.path, headers)
        if not self.served():
            raise api_errors.route_not_found()
        if method == "OPTIONS":
            self._reply_options()
            return
        if method not in self.ALLOWED:
            raise api_errors.method_not_allowed(self.allowed_methods())
        self._check_form_content_type()
        self._check_accept()
        client_id, project_id = "", ""
        if self.UNDER_V2:
            client_id = header_rules.client_id(headers.get("Client-ID"), self.conf.limits)
            # The token's or the signature's project; the headers decide only
            # in noauth mode.
            project_id = (identity.project_id if identity.project_id is not None
                          else header_rules.project(headers))
            if "queue_name" in self.path_kwargs:
                header_rules.queue_identification(self.path_kwargs["queue_name"], project_id,
                                                  self.RESOURCE_KIND)
        roles = identity.roles
        if roles is None:  # noauth: the client's X-Roles header is trusted
            roles = tuple(role.strip() for role in
                          self.request.headers.get("X-Roles", "").split(",") if role.strip())
        self._ctx = RequestContext(project_id=project_id, client_id=client_id,
                                   request_id=self.request_id, roles=roles,
                                   traceparent=self._span.traceparent if self._span else "")
        if self.ADMIN_ROLE and not self._ctx.is_admin:
            raise errors.Forbidden("You are not authorized to complete this action.")

    def served(self) -> bool:
        """Whether the configuration serves this route (404 otherwise, after
        authentication, so the answer says nothing to a caller without a token)."""
        return not self.ADMIN_MODE_ONLY or self.conf.admin_mode

    def _reply_options(self) -> None:
        self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.clear_header("Content-Type")
        self.set_status(200)
        self.finish()

    def add_cors_headers(self) -> None:
        """CORS headers for a configured browser origin (``[api] cors_allowed_origins``).

        Set at the start of the pipeline and again by ``write_error``, because
        ``send_error`` clears the headers: a page must be able to read the
        API's error replies too, or it can only say "network error".
        """
        allowed = self.conf.api.cors_allowed_origins
        if not allowed:
            return
        headers = self.request.headers
        preflight = (self.request.method == "OPTIONS"
                     and "Access-Control-Request-Method" in headers)
        for name, value in cors.cors_headers(headers.get("Origin"), allowed, preflight,
                                             self.allowed_methods()).items():
            self.set_header(name, value)

    def _check_form_content_type(self) -> None:
        headers = self.request.headers
        has_length = "Content-Length" in headers or "Transfer-Encoding" in headers
        content_type = headers.get("Content-Type", "")
        if has_length and content_type.lower() == "application/x-www-form-urlencoded":
            raise api_errors.APIError(
                400, "Invalid Content-Type",
                "Content-Type: application/x-www-form-urlencoded is not supported.")

    def _check_accept(self) -> None:
        accept = self.request.headers.get("Accept", "").strip()
        if accept and not header_rules.accepts_json(accept):
            raise api_errors.APIError(
                406, "406 Not Acceptable",
                'Endpoint only serves `application/json`; specify client-side media type '
                'support with the "Accept" header.',
                extra={"link": {
                    "text": "14.1 Accept",
                    "href": "http://www.w3.org/Protocols/rfc2616/rfc2616-sec14.html#sec14.1",
                    "rel": "help",
                }})

    # -- replies ------------------------------------------------------------

    def reply_json(self, document: Any, status: int = 200,
                   content_type: str = "application/json") -> None:
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        self.finish(dump_json(document))

    def reply_empty(self, status: int = 204) -> None:
        self.set_status(status)
        self.clear_header("Content-Type")
        self.finish()

    async def unavailable_as(self, failure: str, call: Awaitable[T]) -> T:
        """Await a storage call whose 503 REST words otherwise than its operation.

        ``StorageAPI`` words every 503 with the operation's sentence
        (``herald.common.rpc.operations``), which is what REST says almost
        everywhere, so handlers simply await the call. Only where one
        operation serves another resource (a topic is stored as a queue; a
        subscription create first creates its queue) does the sentence
        change: ``failure``, e.g. ``Topic could not be created.``."""
        try:
            return await call
        except errors.ServiceUnavailable as exc:
            # Chained to how the call failed, as StorageAPI chains it.
            raise errors.ServiceUnavailable(f"{failure} {RETRY_HINT}") from (
                exc.__cause__ or exc)

    # -- errors ---------------------------------------------------------------

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if isinstance(value, errors.HeraldError) and value.status < 500:
            LOG.debug("%s %s -> %s %s", self.request.method, self.request.path,
                      value.status, value.title)
        elif isinstance(value, errors.ServiceUnavailable):
            # StorageAPI words the 503 for the client and chains how the call
            # failed, which is what the operator needs.
            cause = value.__cause__
            LOG.warning("storage unavailable: %s %s -> 503 %s", self.request.method,
                        self.request.path, cause.description
                        if isinstance(cause, errors.HeraldError) else value.description)
        elif isinstance(value, errors.HeraldError) and not isinstance(
                value, errors.InternalError):
            LOG.warning("%s %s -> %s %s: %s", self.request.method, self.request.path,
                        value.status, value.title, value.description)
        elif isinstance(value, tornado.web.HTTPError):
            LOG.info("%s %s -> %s", self.request.method, self.request.path, value.status_code)
        else:
            LOG.error("%s %s failed", self.request.method, self.request.path,
                      exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        headers: dict[str, str] = {}
        if isinstance(exc, errors.HeraldError):
            status, body = exc.status, exc.to_body()
            headers = getattr(exc, "headers", {})
        elif isinstance(exc, tornado.web.HTTPError):
            status = exc.status_code
            if status == 405:
                headers = {"Allow": ", ".join(self.allowed_methods())}
            body = {"title": f"{status} {exc.reason or self._reason}"}
        elif exc is not None:
            status = 500
            body = {"title": "Internal server error", "description": str(exc)}
        else:
            status = status_code
            body = {"title": f"{status} {self._reason}"}
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.add_cors_headers()
        self.set_header("Content-Type", "application/json")
        self.finish(dump_json(body))


class NotFoundHandler(BaseHandler):
    """Every unknown path: 404 ``{"title": "404 Not Found"}`` whatever the method."""

    async def prepare(self) -> None:
        set_current_request_id(self.request_id)
        self._enter()
        self.add_cors_headers()
        # Authentication comes first here too (401 without a token in
        # keystone mode), so a caller without credentials cannot map routes.
        await auth.authenticate(self.conf, self.request.method or "", self.request.path,
                                self.request.headers)
        raise api_errors.route_not_found()

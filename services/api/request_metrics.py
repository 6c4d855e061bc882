"""``herald_http_requests_total`` and ``herald_http_request_duration_seconds`` of the REST API.

Every route of the application carries its template (``/v2/queues/{queue_name}/messages``,
made from its pattern once, by ``template``); ``observe`` runs with the
access log line once a request has finished and counts it under that
template, never under the raw path, so queue names and ids never become
label values. Unknown paths count as ``unknown``, the probes as their
own paths. Label children are cached per (method, route, status): a
request costs two dict lookups, an add and a histogram observation.

Recording only: it must not touch the response.
"""

from __future__ import annotations

import re

import tornado.web

from herald.common import metrics

#: The route label of a request no route matched (the 404 handler), as in spans.
UNMATCHED = "unknown"

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_PROBES = {"/healthz": "/healthz", "/readyz": "/readyz"}
# Methods outside this set (any token reaches the 404 handler) count as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_REQUESTS = metrics.ChildCache(metrics.HTTP_REQUESTS)
_DURATION = metrics.ChildCache(metrics.HTTP_DURATION)


def template(pattern: str) -> str:
    """The route label of a Tornado pattern: named groups become ``{name}``."""
    text = _GROUP.sub(lambda m: "{" + m.group(1) + "}", pattern)
    return text.removesuffix("/?").removesuffix("$") or "/"


def observe(handler: tornado.web.RequestHandler) -> None:
    if not metrics.ENABLED:
        return
    request = handler.request
    route = getattr(handler, "route_template", None) or _PROBES.get(request.path, UNMATCHED)
    method = request.method if request.method in _METHODS else "other"
    _REQUESTS(method, route, str(handler.get_status())).inc()
    _DURATION(method, route).observe(request.request_time())

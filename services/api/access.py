"""One access log line per REST request, carrying the request id.

Tornado's own ``tornado.access`` logger is silenced (``herald.common.log``):
its lines lack the request id and would duplicate these. This line is what
``grep req-...`` finds first for a request, before the storage worker's and
the notifier's lines. Probes (``/healthz``, ``/readyz``) that succeed are not
logged: Docker and load balancers ask every few seconds. Formatting only; it
must not touch the response.
"""

from __future__ import annotations

import logging

import tornado.web

# The path only: query strings may carry secrets (signatures, tokens).
LOG = logging.getLogger("herald.api.access")

_PROBES = ("/healthz", "/readyz")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's ``log_function``: called once each request has finished."""
    status = handler.get_status()
    request = handler.request
    if request.path in _PROBES and status < 400:
        return
    # BaseHandler knows the request id (X-Openstack-Request-Id or generated);
    # other handlers fall back to the context variable.
    request_id = getattr(handler, "_request_id", None)
    extra = {"request_id": request_id} if request_id else None
    level = logging.INFO if status < 500 else logging.WARNING
    LOG.log(level, "%s %s %d %.1f ms", request.method, request.path, status,
            1000.0 * request.request_time(), extra=extra)

"""The Tornado application: the route table of the REST API (rest-v2.md §0.1, §12).

Routes take any non-slash segment as ``queue_name`` so that a bad name gets
the pipeline's 400 rather than a 404. Unknown paths fall to the 404 handler.
This module wires handlers; it holds no request logic.
"""

from __future__ import annotations

import tornado.web
from oslo_config import cfg

from herald.api import access, openapi, request_metrics
from herald.api.handlers import (
    base,
    claims,
    deliveries,
    health,
    home,
    messages,
    pools,
    queues,
    redrive,
    share,
    subscriptions,
    topics,
)
from herald.api.in_flight import InFlight
from herald.common import health as probes
from herald.common.rpc.storage_api import StorageAPI

_SEGMENT = r"[^/]+"
_QUEUE = rf"/v2/queues/(?P<queue_name>{_SEGMENT})"


def make_app(conf: cfg.ConfigOpts, storage: StorageAPI,
             in_flight: InFlight | None = None) -> tornado.web.Application:
    """Build the application; handlers read ``conf`` per request, so overrides
    (admin_mode, limits) take effect without rebuilding it."""
    deps = {"conf": conf, "storage": storage, "in_flight": in_flight or InFlight()}
    routes = [
        (r"/", home.VersionsHandler),
        openapi.route(),
        (r"/v2/?", home.HomeHandler),
        (r"/v2/ping", health.PingHandler),
        (r"/v2/health", health.HealthHandler),
        (r"/v2/queues", queues.QueueCollectionHandler),
        (_QUEUE, queues.QueueHandler),
        (rf"{_QUEUE}/stats", queues.QueueStatsHandler),
        (rf"{_QUEUE}/purge", queues.QueuePurgeHandler),
        (rf"{_QUEUE}/share", share.QueueShareHandler),
        (rf"{_QUEUE}/redrive", redrive.RedriveCollectionHandler),
        (rf"{_QUEUE}/redrive/(?P<redrive_id>{_SEGMENT})", redrive.RedriveHandler),
        (rf"{_QUEUE}/messages", messages.MessageCollectionHandler),
        (rf"{_QUEUE}/messages/(?P<message_id>{_SEGMENT})", messages.MessageHandler),
        (rf"{_QUEUE}/messages/(?P<message_id>{_SEGMENT})/release",
         messages.MessageReleaseHandler),
        (rf"{_QUEUE}/messages/(?P<message_id>{_SEGMENT})/deliveries",
         deliveries.MessageDeliveriesHandler),
        (rf"{_QUEUE}/claims", claims.ClaimCollectionHandler),
        (rf"{_QUEUE}/claims/(?P<claim_id>{_SEGMENT})", claims.ClaimHandler),
        (rf"{_QUEUE}/subscriptions", subscriptions.SubscriptionCollectionHandler),
        (rf"{_QUEUE}/subscriptions/(?P<subscription_id>{_SEGMENT})",
         subscriptions.SubscriptionHandler),
        (rf"{_QUEUE}/subscriptions/(?P<subscription_id>{_SEGMENT})/confirm",
         subscriptions.SubscriptionConfirmHandler),
        (rf"{_QUEUE}/subscriptions/(?P<subscription_id>{_SEGMENT})/test",
         deliveries.SubscriptionTestHandler),
        *topics.routes(_SEGMENT),
        *pools.routes(_SEGMENT),
    ]
    return tornado.web.Application(
        # Liveness and readiness for Docker, systemd and load balancers: no
        # Client-ID or project needed, unlike /v2/ping.
        [*probes.routes(probes.storage_probe(storage)),
         *(tornado.web.url(pattern, handler,
                           {**deps, "route_template": request_metrics.template(pattern)})
           for pattern, handler in routes)],
        log_function=_finished,
        default_handler_class=base.NotFoundHandler,
        default_handler_args=deps,
        compress_response=False,
    )


def _finished(handler: tornado.web.RequestHandler) -> None:
    """Tornado's ``log_function``: the access line, then the request's metrics."""
    access.log_request(handler)
    request_metrics.observe(handler)

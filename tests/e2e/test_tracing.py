"""Traces across processes: one REST post with a webhook subscriber is one trace.

An api and a storage worker (separate processes over RabbitMQ, PostgreSQL
and Redis, an authenticated bus) export their spans with OTLP/HTTP to a
receiver in this process (``herald.testing.otlp_sink``), configured only by
the standard ``OTEL_*`` variables. The post's trace holds the api's SERVER
span, its RPC CLIENT span, the worker's SERVER span with SQL spans below it,
and the webhook delivery's CLIENT span, child of and linked to the post's
worker span; the subscriber received that delivery span's ``traceparent``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from herald.testing import polling
from herald.testing.otlp_sink import OTLPSink, ReceivedSpan
from herald.testing.topology import Topology
from tests.e2e.flows import Rest
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.redis]


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    received = OTLPSink()
    yield received
    received.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    yield hooks
    hooks.close()


def _one(spans: list[ReceivedSpan], **match: str) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s.service, s.name, s.kind) for s in spans])
    return found[0]


def test_a_post_with_a_webhook_subscriber_is_one_trace(topology: Topology, sink: OTLPSink,
                                                      receiver: WebhookReceiver) -> None:
    services = topology.distributed(storage_workers=1, apis=1, env={
        **sink.env(), "OS_NOTIFICATION__DISPATCH_INTERVAL": "0.2"})
    rest = Rest(services[-1].url)
    # A client's own trace continues (W3C traceparent header).
    client_trace, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    created = rest.request("POST", "/v2/queues/traced/subscriptions",
                           json={"subscriber": receiver.url + "/ok", "ttl": 600},
                           headers={"traceparent": f"00-{client_trace}-{client_span}-01"})
    assert created.status_code == 201, created.text
    posted = rest.post("traced", {"n": 1}, ttl=600)
    assert posted.status_code == 201, posted.text
    request_id = posted.headers["X-Openstack-Request-Id"]
    polling.wait_until(lambda: receiver.headers, 20, what="the webhook delivery")

    def post_trace() -> list[ReceivedSpan]:
        roots = [s for s in sink.spans() if s.attributes.get("herald.request_id") == request_id]
        if not roots:
            return []
        return [s for s in sink.spans() if s.trace_id == roots[0].trace_id]

    polling.wait_until(lambda: any(s.name == "send webhook" for s in post_trace()), 20,
                       what="the delivery's span in the post's trace")
    spans = post_trace()
    api = _one(spans, service="herald-api", kind="server")
    assert api.name == "POST /v2/queues/{queue_name}/messages"
    assert api.attributes["http.route"] == "/v2/queues/{queue_name}/messages"
    assert api.attributes["http.response.status_code"] == 201 and not api.parent_span_id
    call = _one(spans, service="herald-api", kind="client")
    assert call.name == "herald-storage/message_post" and call.parent_span_id == api.span_id
    worker = _one(spans, service="herald-storage", kind="server")
    assert worker.name == "herald-storage/message_post"
    assert worker.parent_span_id == call.span_id
    assert worker.attributes["rpc.system"] == "oslo_messaging"
    sql = [s for s in spans if s.service == "herald-storage"
           and ("db.system" in s.attributes or "db.system.name" in s.attributes)]
    assert sql and all(s.parent_span_id == worker.span_id for s in sql), sql
    # Statements outside a traced request (outbox polls, heartbeats) make no
    # traces of their own.
    assert all(s.parent_span_id for s in sink.spans()
               if "db.system" in s.attributes or "db.system.name" in s.attributes)
    delivery = _one(spans, service="herald-storage", name="send webhook")
    assert delivery.kind == "client" and delivery.parent_span_id == worker.span_id
    assert delivery.links == ((worker.trace_id, worker.span_id),)
    assert delivery.attributes["messaging.destination.name"] == "traced"
    assert delivery.attributes["http.response.status_code"] == 200
    subscribed = _one(sink.spans(), name="POST /v2/queues/{queue_name}/subscriptions")
    assert (subscribed.trace_id, subscribed.parent_span_id) == (client_trace, client_span)
    # The subscriber's own trace continues the delivery's span (W3C traceparent).
    version, trace_id, parent_id, flags = receiver.headers[0]["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", api.trace_id, delivery.span_id)
    assert int(flags, 16) & 1  # sampled

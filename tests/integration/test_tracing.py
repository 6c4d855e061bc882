"""Integration: traces in one process, exported to a local OTLP/HTTP sink.

* A websocket post and the push it causes to a websocket subscriber are one
  trace (embedded stack: gateway SERVER span, RPC CLIENT and SERVER spans,
  the push's CLIENT span, child of and linked to the post's worker span).
* Concurrent calls of an edge coalesced into one ``batch`` over RabbitMQ:
  the batch's CLIENT span links every operation's span, and on the worker
  each operation's SERVER span continues its own request's trace, linked to
  the batch's SERVER span.
* With tracing off (the default) Herald serves a post, its webhook and its
  websocket push with the opentelemetry packages made unimportable: off
  costs no import, hence no work.

Tracing is switched on in this process only for the test that needs it
(``tracing.setup`` with the sink's variables; ``shutdown`` after).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.common import tracing
from herald.common.context import RequestContext
from herald.common.rpc.storage_api import StorageAPI
from herald.testing import polling
from herald.testing.otlp_sink import OTLPSink, ReceivedSpan
from herald.testing.stack import EmbeddedStack
from tests.integration.test_storage_worker import api, conf, workers  # noqa: F401 fixtures
from tests.ws.client import WSClient


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPSink]:
    received = OTLPSink()
    for name, value in received.env(delay_ms=50).items():
        monkeypatch.setenv(name, value)
    assert not tracing.active()
    assert tracing.setup("test")
    try:
        yield received
    finally:
        tracing.shutdown()
        received.close()


def _trace_of(sink: OTLPSink, span: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in sink.spans() if s.trace_id == span.trace_id]


def _named(spans: list[ReceivedSpan], name: str, kind: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name and s.kind == kind]


def test_a_websocket_post_and_its_push_are_one_trace(sink: OTLPSink, tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path)
    try:
        gateway = stack.gateway()
        url, project = f"ws://127.0.0.1:{gateway.port}/", f"p-{uuid.uuid4().hex[:8]}"
        trace, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        with WSClient(url, project) as listener, WSClient(url, project) as poster:
            # The poster's own trace (a traceparent header in its frames) continues.
            poster.headers["traceparent"] = f"00-{trace}-{parent}-01"
            assert listener.status_body("subscription_create", {"queue_name": "q"})[0] == 201
            status, _ = poster.status_body("message_post", {
                "queue_name": "q", "messages": [{"body": "hi", "ttl": 60}]})
            assert status == 201
            assert listener.recv()[0]["body"] == "hi"
        polling.wait_until(lambda: any(s.name == "send websocket" for s in sink.spans()),
                           10, what="the push's span")
        push = next(s for s in sink.spans() if s.name == "send websocket")
        spans = _trace_of(sink, push)
        [ws] = _named(spans, "ws message_post", "server")
        assert ws.attributes["herald.ws.status"] == 201
        assert (ws.trace_id, ws.parent_span_id) == (trace, parent)
        [call] = _named(spans, "herald-storage/message_post", "client")
        [worker] = _named(spans, "herald-storage/message_post", "server")
        assert (call.parent_span_id, worker.parent_span_id) == (ws.span_id, call.span_id)
        assert push.kind == "client" and push.parent_span_id == worker.span_id
        assert push.links == ((worker.trace_id, worker.span_id),)
        assert push.attributes["messaging.operation.type"] == "send"
    finally:
        stack.close()


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.redis
def test_a_coalesced_batch_links_each_operation(sink: OTLPSink, workers,  # noqa: F811
                                                api: StorageAPI) -> None:  # noqa: F811
    workers()
    project = f"proj-{uuid.uuid4().hex[:6]}"
    # Each request's own trace, as an edge's SERVER span would start it.
    roots = [tracing.start("request", "server") for _ in range(12)]
    ctxts = [RequestContext(project_id=project, client_id=str(uuid.uuid4()),
                            traceparent=root.traceparent) for root in roots if root]

    async def scenario() -> list[Any]:
        assert await api.ping(ctxts[0]) is True
        return await asyncio.gather(*(api.message_post(c, f"q{i % 3}", [{"body": i, "ttl": 60}])
                                      for i, c in enumerate(ctxts)))

    assert all(len(ids) == 1 for ids in asyncio.run(scenario()))
    for root in roots:
        assert root is not None
        root.end()
    assert api._caller._coalescer.batches_sent >= 1  # type: ignore[attr-defined]

    # The roots ended last: once they are exported, everything else is.
    polling.wait_until(lambda: len(_named(sink.spans(), "request", "server")) == len(roots),
                       10, what="every span")
    spans = sink.spans()
    by_id = {s.span_id: s for s in spans}
    batches = _named(spans, "herald-storage/batch", "server")
    assert batches
    for served in batches:
        sent = by_id[served.parent_span_id]
        assert sent.kind == "client" and sent.name == "herald-storage/batch"
        count = sent.attributes["messaging.batch.message_count"]
        assert count == served.attributes["messaging.batch.message_count"] == len(sent.links)
        operations = [by_id[span_id] for _, span_id in sent.links]
        assert all(op.name == "herald-storage/message_post" and op.kind == "client"
                   for op in operations)
        # On the worker: one span per operation, in its request's trace.
        for op in operations:
            [run] = [s for s in spans if s.parent_span_id == op.span_id]
            assert run.kind == "server" and run.trace_id == op.trace_id != served.trace_id
            assert run.links == ((served.trace_id, served.span_id),)


_WITHOUT_OPENTELEMETRY = textwrap.dedent("""
    import sys, uuid
    from pathlib import Path

    class Unimportable:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "opentelemetry":
                raise ImportError(f"{name} is not installed (test)")

    sys.meta_path.insert(0, Unimportable())
    for name in [m for m in sys.modules if m.partition(".")[0] == "opentelemetry"]:
        del sys.modules[name]

    import requests
    from herald.common import tracing
    from herald.testing import polling
    from herald.testing.stack import EmbeddedStack
    from tests.webhook_receiver import WebhookReceiver
    from tests.ws.client import WSClient

    assert not tracing.setup("run")  # the environment asks for nothing
    stack, hooks = EmbeddedStack(Path(sys.argv[1])), WebhookReceiver()
    try:
        stack.start_api()
        gateway = stack.gateway()
        headers = {"Client-ID": str(uuid.uuid4()), "X-Project-ID": "p"}
        with WSClient(f"ws://127.0.0.1:{gateway.port}/", "p") as listener:
            assert listener.status_body("subscription_create", {"queue_name": "q"})[0] == 201
            made = requests.post(f"{stack.base_url}/v2/queues/q/subscriptions",
                                 json={"subscriber": hooks.url + "/ok"}, headers=headers)
            assert made.status_code == 201, made.text
            posted = requests.post(f"{stack.base_url}/v2/queues/q/messages", headers=headers,
                                   json={"messages": [{"body": 1, "ttl": 60}]})
            assert posted.status_code == 201, posted.text
            assert listener.recv()[0]["body"] == 1
        polling.wait_until(lambda: hooks.headers, 10, what="the webhook")
        assert "traceparent" not in hooks.headers[0]
    finally:
        hooks.close()
        stack.close()
    assert not [m for m in sys.modules if m.partition(".")[0] == "opentelemetry"]
    print("served without opentelemetry")
""")


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_OPENTELEMETRY, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert "served without opentelemetry" in done.stdout, done.stderr[-3000:]

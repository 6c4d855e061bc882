"""A local OTLP/HTTP trace receiver: where a test's (or the bench's) processes export spans.

``OTLPSink()`` listens on 127.0.0.1 (its own thread, one thread per request)
for ``POST /v1/traces`` in OTLP/HTTP protobuf (gzip or not), answers 200,
and keeps every span it decoded (``spans()``), or with ``keep=False`` (the
bench: a sink, not a recorder) decodes nothing and only counts the exports
and their bytes, so the sink costs the process it runs in next to nothing. ``env(...)`` is what a
Herald process needs to export there (``herald.common.tracing`` reads only
the standard ``OTEL_*`` variables), with a short batch delay so spans
arrive while the test waits for them.

Decoding uses opentelemetry-proto (installed with the OTLP exporter). This
module must not assert anything about Herald's spans: tests do.
"""

from __future__ import annotations

import dataclasses
import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: OTLP span kinds (``Span.SpanKind``) by number.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer",
         5: "consumer"}


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, as the sink decoded it (ids in hex)."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    #: ``(trace_id, span_id)`` of every linked span.
    links: tuple[tuple[str, str], ...]
    #: StatusCode: 0 unset, 1 ok, 2 error.
    status: int


def _value(any_value: Any) -> Any:
    field = any_value.WhichOneof("value")
    return None if field is None else getattr(any_value, field)


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ``ExportTraceServiceRequest``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    service=str(resource.get("service.name", "")),
                    name=span.name, kind=KINDS.get(span.kind, str(span.kind)),
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    links=tuple((link.trace_id.hex(), link.span_id.hex())
                                for link in span.links),
                    status=span.status.code))
    return spans


class OTLPSink:
    """Receives OTLP/HTTP trace exports; ``endpoint`` is its root URL."""

    def __init__(self, keep: bool = True) -> None:
        owner = self
        self._keep = keep
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        #: Spans decoded (``keep`` only), export requests and their bytes.
        self.count = 0
        self.requests = 0
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding", "") == "gzip":
                    body = gzip.decompress(body)
                status = 200 if self.path == "/v1/traces" else 404
                if status == 200:
                    owner._received(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="otlp-sink",
                         daemon=True).start()

    def _received(self, body: bytes) -> None:
        spans = decode(body) if self._keep else []
        with self._lock:
            self.requests += 1
            self.bytes += len(body)
            self.count += len(spans)
            self._spans.extend(spans)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def env(self, sampler: str | None = None, ratio: float | None = None,
            delay_ms: int | None = 200) -> dict[str, str]:
        """``OTEL_*`` variables exporting a process's spans here; ``sampler``
        and ``ratio``: ``OTEL_TRACES_SAMPLER`` and its argument."""
        env = {"OTEL_TRACES_EXPORTER": "otlp",
               "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        if delay_ms is not None:  # None: the SDK's default (5 s), as in production
            env["OTEL_BSP_SCHEDULE_DELAY"] = str(delay_ms)
        if sampler is not None:
            env["OTEL_TRACES_SAMPLER"] = sampler
        if ratio is not None:
            env["OTEL_TRACES_SAMPLER_ARG"] = str(ratio)
        return env

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""OpenTelemetry traces of the request, bus and push paths: off unless asked for.

Configured only by OpenTelemetry's standard environment variables, read once
per process by ``setup`` (the CLI calls it, the one place that runs once per
process):

* ``OTEL_TRACES_EXPORTER``: ``otlp`` (or ``console``, for a look on stderr);
  unset or ``none`` -- the default -- leaves tracing off;
* ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and
  ``OTEL_EXPORTER_OTLP_PROTOCOL`` / ``..._TRACES_PROTOCOL``: ``http/protobuf``
  (the default, opentelemetry-exporter-otlp-proto-http) or ``grpc`` (needs
  opentelemetry-exporter-otlp-proto-grpc installed);
* ``OTEL_SERVICE_NAME`` (default ``herald-<service>``),
  ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` / ``_ARG`` (the SDK's
  default: ``parentbased_always_on``), ``OTEL_BSP_*``, ``OTEL_SDK_DISABLED``.

**Off costs nothing**: this module imports no OpenTelemetry package until
``setup`` finds an exporter, every hook returns at once on ``_TRACER is
None`` or on an empty ``RequestContext.traceparent``, and nothing changes on
the wire (``RequestContext.to_dict`` leaves the key out).

**Propagation.** The W3C ``traceparent`` of the current span travels in
``RequestContext.traceparent``, so inside the RPC context, which
``bus_auth`` signs with the rest of the call: a trace context altered on the
bus fails the signature like any other field. Outbox rows keep the post's
(``outbox.traceparent``), and webhook deliveries send their own span's as a
``traceparent`` header so the subscriber's trace continues.

The spans (names and attributes after the OpenTelemetry HTTP, RPC and
messaging semantic conventions) are listed in docs/operations.md; the hooks
live where the spans happen (api ``BaseHandler``, gateway ``Dispatcher``,
``StorageAPI``, ``OsloCaller``'s batches, the RPC server's proxy, the
batch runner, ``Deliverer``). The tracer is process-wide state, like the
OpenTelemetry ``TracerProvider`` it comes from (the OpenTelemetry API makes
that global): it is the one module-level object here. This module must not
know Herald's storage or transports; it makes spans from names, kinds,
contexts and attributes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

LOG = logging.getLogger(__name__)

#: The tracer ``setup`` made; None while tracing is off (the default).
_TRACER: Any = None
#: The provider to flush at ``shutdown``.
_PROVIDER: Any = None
#: Whether the sampler never samples below a parent that was not sampled
#: (the parent-based samplers, the default): such a span is then not made.
_FOLLOWS_PARENT = False

#: Span kinds by name (``opentelemetry.trace.SpanKind`` members, once loaded).
KINDS = ("server", "client", "consumer", "producer", "internal")
#: The value of ``messaging.system`` / ``rpc.system`` for Herald's bus.
BUS_SYSTEM = "rabbitmq"
RPC_SYSTEM = "oslo_messaging"
#: The longest traceparent accepted from outside (the W3C form is 55 chars).
MAX_TRACEPARENT = 128


def active() -> bool:
    """Whether this process traces (``setup`` found an exporter)."""
    return _TRACER is not None


def _exporters(environ: Mapping[str, str]) -> list[str]:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER", "none")
    return [n.strip().lower() for n in names.split(",") if n.strip().lower() not in ("", "none")]


def _otlp_exporter(environ: Mapping[str, str]) -> Any:
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise RuntimeError("OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the package "
                               "opentelemetry-exporter-otlp-proto-grpc") from exc
        return GrpcExporter()
    if protocol != "http/protobuf":
        raise RuntimeError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: "
                           "use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: from the environment


def setup(service: str, sql: bool = False) -> bool:
    """Turn tracing on for this process when the environment asks for it;
    ``sql``: also trace SQLAlchemy statements (storage processes). Returns
    whether tracing is on. Idempotent; raises ``RuntimeError`` for a setting
    it cannot honour (the process should not start half-observable)."""
    global _TRACER, _PROVIDER, _FOLLOWS_PARENT
    # The SDK and the exporter read their own variables (endpoint, sampler,
    # batching) from os.environ too: one source for every setting.
    environ = os.environ
    exporters = _exporters(environ)
    if _TRACER is not None or not exporters:
        return _TRACER is not None
    unknown = set(exporters) - {"otlp", "console"}
    if unknown:
        raise RuntimeError(f"OTEL_TRACES_EXPORTER names unsupported exporters: "
                           f"{', '.join(sorted(unknown))} (use otlp or console)")
    from opentelemetry import trace
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": f"herald-{service}"}).merge(
        OTELResourceDetector().detect())
    if environ.get("OTEL_SERVICE_NAME"):
        resource = resource.merge(Resource({"service.name": environ["OTEL_SERVICE_NAME"]}))
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
    for name in exporters:
        exporter = _otlp_exporter(environ) if name == "otlp" else ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if sql:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # Every engine created from now on (the worker makes its engines
        # after this) reports its statements as children of the current span.
        # skip_dep_check: the instrumentation pins sqlalchemy < 2.1, yet its
        # event hooks work on 2.1 (tests/e2e/test_tracing.py checks the spans).
        SQLAlchemyInstrumentor().instrument(tracer_provider=_ChildrenOnly(provider),
                                            skip_dep_check=True)
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    _FOLLOWS_PARENT = (isinstance(provider.sampler, ParentBased)
                       and getattr(provider.sampler, "_remote_parent_not_sampled",
                                   None) is ALWAYS_OFF)
    _PROVIDER = provider
    _TRACER = provider.get_tracer("herald")
    LOG.info("tracing on: service %s, exporters %s, sampler %s",
             resource.attributes.get("service.name"), ",".join(exporters),
             environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on"))
    return True


class _ChildrenOnly:
    """The tracer provider of an instrumentation whose spans only mean
    something inside a traced request (SQL): a span without a recording
    current span is not made. Without it every statement of the workers'
    background jobs (outbox leases, statistics, heartbeats) was a trace of
    its own, and a sampled-out request still paid for its SQL spans."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _ChildTracer(self._provider.get_tracer(*args, **kwargs))


class _ChildTracer:
    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    @staticmethod
    def _orphan(context: Any) -> bool:
        from opentelemetry import trace

        return not trace.get_current_span(context).is_recording()

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> Any:
        if self._orphan(context):
            from opentelemetry import trace

            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    def start_as_current_span(self, name: str, context: Any = None, *args: Any,
                              **kwargs: Any) -> Any:
        if self._orphan(context):
            from opentelemetry import trace

            return contextlib.nullcontext(trace.INVALID_SPAN)
        return self._tracer.start_as_current_span(name, context, *args, **kwargs)


def shutdown() -> None:
    """Export what is buffered and stop (the CLI, when the service stopped)."""
    global _TRACER, _PROVIDER, _FOLLOWS_PARENT
    if _PROVIDER is not None:
        _PROVIDER.shutdown()
    _TRACER = _PROVIDER = None
    _FOLLOWS_PARENT = False


def _context_of(traceparent: str) -> Any:
    """The OpenTelemetry context a traceparent names (empty when invalid)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not traceparent or len(traceparent) > MAX_TRACEPARENT:
        return None
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def _link(traceparent: str) -> Any:
    from opentelemetry import trace

    context = _context_of(traceparent)
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


class Span:
    """One span started by ``start``; ``traceparent`` is its own, to hand
    on (in a ``RequestContext``, an outbox row, a header)."""

    __slots__ = ("_span", "traceparent")

    def __init__(self, span: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        self._span = span
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
        self.traceparent = carrier.get("traceparent", "")

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def fail(self, error: BaseException | str) -> None:
        """Mark the span failed (``error.type`` and an ERROR status)."""
        from opentelemetry.trace import Status, StatusCode

        if isinstance(error, BaseException) and getattr(error, "status", 500) < 500:
            # An error with an HTTP status below 500 (a HeraldError's 4xx) is
            # the answer to a client's mistake, not a failure of this span.
            self._span.set_attribute("herald.refused", type(error).__qualname__)
            return
        if isinstance(error, BaseException):
            self._span.set_attribute("error.type", type(error).__qualname__)
            self._span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        else:
            self._span.set_attribute("error.type", error)
            self._span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        self._span.end()

    @contextlib.contextmanager
    def current(self) -> Iterator[Span]:
        """The span as the thread's current one (SQL spans become its children)."""
        from opentelemetry import trace

        with trace.use_span(self._span, end_on_exit=False):
            yield self


class _Unsampled(Span):
    """The span below a parent that was not sampled, with a parent-based
    sampler: nothing would record it, here or downstream, so none is made
    and the parent's context travels on. At 10 % sampling, nine requests in
    ten cost a string test per span instead of the SDK's ~20-40 us."""

    __slots__ = ()

    def __init__(self, traceparent: str) -> None:  # noqa: D107 (no SDK span)
        self._span = None
        self.traceparent = traceparent

    def set(self, key: str, value: Any) -> None:
        pass

    def fail(self, error: BaseException | str) -> None:
        pass

    def end(self) -> None:
        pass

    @contextlib.contextmanager
    def current(self) -> Iterator[Span]:
        yield self


def _not_sampled(traceparent: str) -> bool:
    """A W3C traceparent whose flags say "not sampled"."""
    if len(traceparent) != 55 or traceparent[52] != "-":
        return False
    try:
        return not int(traceparent[53:], 16) & 1
    except ValueError:
        return False


def start(name: str, kind: str, parent: str = "", attributes: Mapping[str, Any] | None = None,
          links: Iterable[str] = ()) -> Span | None:
    """A started span (None while tracing is off): child of the span
    ``parent`` (a traceparent) if valid, else a root; linked to ``links``."""
    if _TRACER is None:
        return None
    if parent and _FOLLOWS_PARENT and _not_sampled(parent):
        return _Unsampled(parent)
    from opentelemetry.trace import SpanKind

    made = [link for link in (_link(tp) for tp in links if tp) if link is not None]
    span = _TRACER.start_span(name, context=_context_of(parent), kind=SpanKind[kind.upper()],
                              attributes={k: v for k, v in (attributes or {}).items()
                                          if v is not None},
                              links=made)
    return Span(span)


@contextlib.contextmanager
def span(name: str, kind: str, parent: str = "", attributes: Mapping[str, Any] | None = None,
         links: Iterable[str] = (), current: bool = False) -> Iterator[Span | None]:
    """``start`` as a context manager: ended on exit, failed by an exception
    escaping it; ``current``: the thread's current span meanwhile."""
    made = start(name, kind, parent, attributes, links)
    if made is None:
        yield None
        return
    try:
        if current:
            with made.current():
                yield made
        else:
            yield made
    except BaseException as exc:
        made.fail(exc)
        raise
    finally:
        made.end()


# -- the attributes of Herald's spans (semantic conventions) -----------------

def rpc_attributes(service: str, method: str, batch_size: int | None = None,
                   topic: str | None = None) -> dict[str, Any]:
    """A call or cast on the bus: RPC conventions (``service``: the API's
    name, e.g. ``herald-storage``) plus the messaging system and, where
    known, the topic it travels on."""
    return {"rpc.system": RPC_SYSTEM, "rpc.service": service, "rpc.method": method,
            "messaging.system": BUS_SYSTEM, "messaging.destination.name": topic,
            "messaging.batch.message_count": batch_size}


def rpc_span_name(service: str, method: str) -> str:
    """RPC conventions: ``{rpc.service}/{rpc.method}``."""
    return f"{service}/{method}"


def served(method: Any, service: str, name: str, topic: str | None = None) -> Any:
    """``method(ctxt, ...)`` of an RPC endpoint, run inside a SERVER span
    continuing the caller's trace (``ctxt.traceparent``) as the thread's
    current span, and called with a context carrying that span's
    traceparent. Off, or for a message that carries no trace context (the
    bus never starts a trace: wake-ups, readiness pings), ``method`` as is."""
    if _TRACER is None:
        return method

    def call(ctxt: Any, *args: Any, **kwargs: Any) -> Any:
        parent = getattr(ctxt, "traceparent", "")
        if not parent:
            return method(ctxt, *args, **kwargs)
        ops = kwargs.get("ops")
        with span(rpc_span_name(service, name), "server", parent,
                  rpc_attributes(service, name, len(ops) if isinstance(ops, list) else None,
                                 topic), current=True) as made:
            if made is not None:
                ctxt = dataclasses.replace(ctxt, traceparent=made.traceparent)
            return method(ctxt, *args, **kwargs)

    return call

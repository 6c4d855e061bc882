"""Unit: how ``herald.common.tracing`` reads the standard OTEL_* variables.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter (and never with
``OTEL_SDK_DISABLED=true``); a setting it cannot honour is refused with a
sentence (the CLI then exits 2) rather than half-started; off, every hook is
a no-op.
"""

from __future__ import annotations

import pytest

from herald.common import tracing


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL",
                 "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.active()


@pytest.mark.parametrize("env", [{}, {"OTEL_TRACES_EXPORTER": "none"},
                                 {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}])
def test_off_unless_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch,
                                         env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.setup("api") is False and not tracing.active()
    assert tracing.start("x", "server") is None

    def method(ctxt: object) -> str:
        return "ran"

    assert tracing.served(method, "herald-storage", "ping") is method
    with tracing.span("x", "client") as made:
        assert made is None


@pytest.mark.parametrize("env, words", [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unsupported exporters: zipkin"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "'http/json' is not supported"),
])
def test_a_setting_it_cannot_honour_is_refused(monkeypatch: pytest.MonkeyPatch,
                                               env: dict[str, str], words: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=words):
        tracing.setup("api")
    assert not tracing.active()


@pytest.mark.parametrize("sampler, follows", [("parentbased_traceidratio", True),
                                              ("traceidratio", False)])
def test_below_an_unsampled_parent_no_span_is_made_with_a_parent_based_sampler(
        monkeypatch: pytest.MonkeyPatch, sampler: str, follows: bool) -> None:
    """Nothing records it anywhere: the parent's context travels on as is."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    assert tracing.setup("api")
    try:
        unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        child = tracing.start("call", "client", unsampled)
        assert child is not None
        assert (child.traceparent == unsampled) is follows
        sampled = tracing.start("call", "client", unsampled[:-2] + "01")
        assert sampled is not None and sampled.traceparent.split("-")[1:3] != [
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"]
        for span in (child, sampled):
            span.end()
    finally:
        tracing.shutdown()

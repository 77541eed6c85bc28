"""Trace context extraction against headers produced by real tracer SDKs."""
from __future__ import annotations

import base64
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from skywalking.trace.carrier import Carrier

from l7scope.tracecontext import extract

TRACER = TracerProvider().get_tracer("l7scope-test")


def _inject(propagator) -> tuple[dict, object]:
    with TRACER.start_as_current_span("client-call") as span:
        carrier: dict[str, str] = {}
        propagator.inject(carrier, context=set_span_in_context(span))
    return carrier, span.get_span_context()


def _ids(ctx) -> tuple[str, str]:
    return format_trace_id(ctx.trace_id), format_span_id(ctx.span_id)


# --- real SDK headers -----------------------------------------------------------------------

def test_w3c_traceparent_from_opentelemetry_sdk():
    headers, ctx = _inject(TraceContextTextMapPropagator())
    trace, request_id = extract(list(headers.items()))
    trace_id, span_id = _ids(ctx)
    assert trace.provider == "w3c"
    assert trace.trace_id == trace_id and trace.span_id == span_id
    assert trace.sampled is True
    assert request_id is None


def test_w3c_tracestate_kept_in_extra():
    headers, ctx = _inject(TraceContextTextMapPropagator())
    headers["tracestate"] = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    trace, _ = extract(list(headers.items()))
    assert dict(trace.extra) == {"tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}


def test_b3_single_from_opentelemetry_propagator():
    headers, ctx = _inject(B3SingleFormat())
    assert set(headers) == {"b3"}
    trace, _ = extract([("B3", headers["b3"])])
    assert (trace.provider, trace.trace_id, trace.span_id) == ("zipkin", *_ids(ctx))
    assert trace.sampled is True


def test_b3_multi_from_opentelemetry_propagator_any_case():
    headers, ctx = _inject(B3MultiFormat())
    assert {"x-b3-traceid", "x-b3-spanid", "x-b3-sampled"} <= set(headers)
    mixed = [(k.upper(), v) for k, v in headers.items()]
    trace, _ = extract(mixed)
    assert (trace.provider, trace.trace_id, trace.span_id) == ("zipkin", *_ids(ctx))
    assert trace.sampled is True


def test_sw8_from_skywalking_carrier():
    carrier = Carrier(trace_id="2a6f5e4c.101.16900000000010001", segment_id="seg-7f3a.1.2",
                      span_id="3", service="orders", service_instance="orders-1@10.0.0.5",
                      endpoint="/api/orders", client_address="10.0.0.9:8080")
    trace, _ = extract([("sw8", carrier.val)])
    assert trace.provider == "skywalking"
    assert trace.trace_id == "2a6f5e4c.101.16900000000010001"
    assert trace.segment_id == "seg-7f3a.1.2"
    assert trace.span_id == "3"
    assert trace.sampled is True
    assert dict(trace.extra) == {
        "parent_service": "orders", "parent_service_instance": "orders-1@10.0.0.5",
        "parent_endpoint": "/api/orders", "target_address": "10.0.0.9:8080"}


# --- precedence and fallbacks --------------------------------------------------------------

W3C = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
B3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"


def _sw8(sample="1", span="0") -> str:
    enc = [base64.b64encode(s.encode()).decode() for s in
           ("trace-1", "segment-1", "svc", "inst", "/ep", "host:80")]
    return "-".join([sample, enc[0], enc[1], span, *enc[2:]])


def test_precedence_sw8_then_traceparent_then_b3():
    assert extract([("b3", B3), ("traceparent", W3C), ("sw8", _sw8())])[0].provider == "skywalking"
    assert extract([("b3", B3), ("traceparent", W3C)])[0].provider == "w3c"
    trace = extract([("b3", B3)])[0]
    assert (trace.trace_id, trace.span_id, trace.parent_span_id) == (
        "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", "05e3ac9a4f6e3b90")


def test_malformed_higher_precedence_falls_back_and_counts():
    counters = Counter()
    trace, _ = extract([("sw8", "1-!!!-x-0-a-b-c-d"), ("traceparent", W3C)], counters)
    assert trace.provider == "w3c"
    assert counters == Counter({"sw8_bad_base64": 1})


@pytest.mark.parametrize("value, reason", [
    ("1-dGVzdA==", "sw8_field_count"),
    (_sw8(sample="2"), "sw8_bad_sample"),
    (_sw8(span="x"), "sw8_bad_span_id"),
    ("1-@@@-c2Vn-0-c3Zj-aW5zdA==-L2Vw-aDo4MA==", "sw8_bad_base64"),
    ("1--c2Vn-0-c3Zj-aW5zdA==-L2Vw-aDo4MA==", "sw8_empty_id"),
])
def test_sw8_invalid(value, reason):
    counters = Counter()
    assert extract([("sw8", value)], counters) == (None, None)
    assert counters == Counter({reason: 1})


def test_sw8_not_sampled():
    assert extract([("SW8", _sw8(sample="0", span="12"))])[0].sampled is False
    assert extract([("SW8", _sw8(sample="0", span="12"))])[0].span_id == "12"


@pytest.mark.parametrize("value, reason", [
    ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "traceparent_bad_trace_id"),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "traceparent_zero_trace_id"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "traceparent_zero_parent_id"),
    ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "traceparent_version_ff"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "traceparent_bad_length"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "traceparent_too_short"),
    ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "traceparent_bad_delimiter"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9g2b7-01", "traceparent_bad_parent_id"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", "traceparent_bad_flags"),
])
def test_traceparent_invalid(value, reason):
    counters = Counter()
    assert extract([("traceparent", value)], counters)[0] is None
    assert counters == Counter({reason: 1})


def test_traceparent_higher_version_with_more_fields_is_parsed():
    trace, _ = extract([("traceparent", "cc-" + W3C[3:] + "-what-the-future-holds")])
    assert (trace.trace_id, trace.span_id, trace.sampled) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)


def test_traceparent_not_sampled_flag():
    assert extract([("traceparent", W3C[:-2] + "00")])[0].sampled is False


@pytest.mark.parametrize("flags, sampled", [("03", True), ("fe", False), ("ff", True)])
def test_traceparent_flags_sampled_bit(flags, sampled):
    assert extract([("traceparent", W3C[:-2] + flags)])[0].sampled is sampled


@pytest.mark.parametrize("header, value, reason", [
    ("traceparent", W3C[:-2] + "\u0660\u0661", "traceparent_bad_flags"),  # ARABIC-INDIC 01
    ("traceparent", W3C[:-2] + "\uff10\uff11", "traceparent_bad_flags"),  # FULLWIDTH 01
    ("sw8", _sw8(span="\u0661\u0662"), "sw8_bad_span_id"),
    ("sw8", _sw8(span="1" * 11), "sw8_bad_span_id"),
])
def test_numbers_in_trace_headers_are_ascii_digits(header, value, reason):
    counters = Counter()
    assert extract([(header, value)], counters) == (None, None)
    assert counters == Counter({reason: 1})


def test_two_traceparent_headers_are_invalid():
    counters = Counter()
    assert extract([("traceparent", W3C), ("traceparent", W3C)], counters)[0] is None
    assert counters == Counter({"traceparent_multiple": 1})


@pytest.mark.parametrize("value", ["0", "1", "d"])
def test_b3_single_sampling_only_has_no_context(value):
    counters = Counter()
    assert extract([("b3", value)], counters) == (None, None)
    assert not counters


def test_b3_single_debug_means_sampled_and_64bit_trace_id():
    trace = extract([("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-d")])[0]
    assert (trace.trace_id, trace.sampled, trace.parent_span_id) == (
        "a3ce929d0e0e4736", True, None)


@pytest.mark.parametrize("headers, sampled", [
    ([("X-B3-Sampled", "0")], False), ([("X-B3-Sampled", "true")], True),
    ([("X-B3-Sampled", "false")], False), ([("X-B3-Flags", "1"), ("X-B3-Sampled", "0")], True),
    ([], None),
])
def test_b3_multi_sampling_values(headers, sampled):
    base = [("X-B3-TraceId", "a3ce929d0e0e4736"), ("X-B3-SpanId", "00f067aa0ba902b7"),
            ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90")]
    trace = extract(base + headers)[0]
    assert trace.sampled is sampled
    assert trace.parent_span_id == "05e3ac9a4f6e3b90"


@pytest.mark.parametrize("headers, reason", [
    ([("b3", "a3ce929d0e0e473-00f067aa0ba902b7")], "b3_bad_trace_id"),
    ([("b3", "a3ce929d0e0e4736-00f067aa0ba902b")], "b3_bad_span_id"),
    ([("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-x")], "b3_bad_sampling"),
    ([("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1-zz")], "b3_bad_parent_span_id"),
    ([("b3", "a-b-c-d-e")], "b3_bad_format"),
    ([("X-B3-TraceId", "0000000000000000"), ("X-B3-SpanId", "00f067aa0ba902b7")],
     "b3_bad_trace_id"),
    ([("X-B3-TraceId", "a3ce929d0e0e4736")], "b3_bad_span_id"),
])
def test_b3_invalid(headers, reason):
    counters = Counter()
    assert extract(headers, counters)[0] is None
    assert counters == Counter({reason: 1})


def test_x_request_id_returned_and_bounded():
    assert extract([("X-Request-Id", "f81d4fae-7dec-11d0")]) == (None, "f81d4fae-7dec-11d0")
    counters = Counter()
    assert extract([("x-request-id", "r" * 257)], counters) == (None, None)
    assert counters == Counter({"x_request_id_too_long": 1})
    assert extract([("x-request-id", "r" * 256)])[1] == "r" * 256


@given(st.lists(st.tuples(
    st.sampled_from(["sw8", "traceparent", "tracestate", "b3", "X-B3-TraceId", "X-B3-SpanId",
                     "X-B3-Sampled", "X-B3-Flags", "X-B3-ParentSpanId", "x-request-id"]),
    st.text(max_size=120)), max_size=8))
def test_fuzz_never_raises(headers):
    counters = Counter()
    trace, request_id = extract(headers, counters)
    assert trace is None or trace.trace_id
    assert request_id is None or len(request_id) <= 256


def test_b3_single_header_wins_over_multi_headers():
    trace = extract([("X-B3-TraceId", "a3ce929d0e0e4736"), ("X-B3-SpanId", "00f067aa0ba902b7"),
                     ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")])[0]
    assert (trace.trace_id, trace.span_id, trace.sampled) == (
        "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", None)

"""The fuzz targets by name (docs/fuzzing.md lists what each covers)."""
from __future__ import annotations

from . import compiled, parsers, whole

TARGETS = {
    "http1": parsers.http1,
    "http2": parsers.http2,
    "hpack": parsers.hpack_strict,
    "hpack_observer": parsers.hpack_observer,
    "h2frames": parsers.h2frames,
    "detect": parsers.detection,
    "tracecontext": parsers.tracecontext,
    "pcap": whole.pcap,
    "pipeline": whole.pipeline,
    "config": whole.config,
    "redact": whole.redaction,
    "wire": compiled.wire_batch,
    "jsonl": compiled.jsonl_exchange,
}

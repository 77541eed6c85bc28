"""An application instrumented with the SkyWalking Python agent (run as its own process).

    python traced_skywalking.py PORT OAP_ADDRESS

Starts the SkyWalking agent (service "traced-skywalking", its own reporter pointed at
OAP_ADDRESS, which may be an unused port: reporting is not what is tested here). Inside one
entry span it makes three calls with urllib.request, whose SkyWalking plugin opens an exit span
per call and injects the sw8 header: GET /slow?ms=700, GET /status/500, GET /hello on
127.0.0.1:PORT. Prints one JSON list on stdout: per call {"path", "status", "trace_id",
"segment_id", "span_id", "sw8"}: the trace and segment ids of the SkyWalking context and the
exit span id the plugin propagated.
"""
import json
import os
import sys
import urllib.error
import urllib.request

from skywalking import agent, config
from skywalking.trace.context import get_context

PATHS = ("/slow?ms=700", "/status/500", "/hello")


def start_agent(oap: str) -> None:
    config.init(agent_collector_backend_services=oap, agent_protocol="grpc",
                agent_name="traced-skywalking", agent_instance_name="traced-1",
                agent_meter_reporter_active=False, agent_log_reporter_active=False,
                agent_profile_active=False, agent_logging_level="CRITICAL",
                agent_disable_plugins=["sw_http_server"])
    agent.start()


def call(port: int, path: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as e:
        e.read()
        status = e.code
    return status, request.get_header("Sw8")  # urllib stores names capitalized


def main() -> None:
    port, oap = int(sys.argv[1]), sys.argv[2]
    start_agent(oap)
    calls = []
    with get_context().new_entry_span(op="/traced-job") as entry:
        segment = entry.context.segment
        for path in PATHS:
            status, sw8 = call(port, path)
            calls.append({"path": path, "status": status,
                          "trace_id": str(segment.related_traces[0]),
                          "segment_id": str(segment.segment_id),
                          "span_id": sw8.split("-")[3], "sw8": sw8})
    print(json.dumps(calls), flush=True)
    os._exit(0)  # skip the agent's exit-time report to the (absent) OAP


if __name__ == "__main__":
    main()

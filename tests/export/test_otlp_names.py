"""OTLP exchange metrics name local processes with the run's pair-name function (the service
names of the process table), as the pair metrics and Prometheus do."""
from l7scope.export.otlp import ExchangeMetrics, exchange_attributes
from tests.export import make_exchange, mono_to_wall_ns


def _attrs(attrs) -> dict:
    return dict(attrs)


def services(comm, pid):
    return {42: "python3 app.py", 7: "curl"}.get(pid, comm or "?")


def test_default_names_are_process_names_without_pids():
    attrs = _attrs(exchange_attributes(make_exchange(peer_pid=7), "curl"))
    assert (attrs["l7scope.client"], attrs["l7scope.server"]) == ("curl", "api")


def test_injected_names_name_the_series():
    m = ExchangeMetrics(mono_to_wall_ns, names=services)
    for pid in (7, 7):
        m.observe(make_exchange(peer_pid=pid), "curl")
    [point] = m.points()
    attrs = _attrs(point.attrs)
    assert (attrs["l7scope.client"], attrs["l7scope.server"], point.count) == (
        "curl", "python3 app.py", 2)

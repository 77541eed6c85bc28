"""Service names: container, systemd unit, interpreter + script, process name."""
import json

import pytest

from l7scope.procs.naming import docker_container_name, service_name

CID = "3f2504e04f8911d39a0c0305e82c33014f1d7b2a9e5c6d8f0a1b2c3d4e5f6a7b"


@pytest.mark.parametrize("name, args, want", [
    ("python3", ("python3", "app.py"), "python3 app.py"),
    ("python3", ("/usr/bin/python3", "-u", "-W", "ignore", "/srv/shop/app.py", "--port", "80"),
     "python3 app.py"),
    ("python3", ("python3", "-m", "http.server", "8000"), "python3 http.server"),
    ("python3", ("python3", "-c", "import x"), "python3"),
    ("python3", ("python3",), "python3"),
    ("python3.12", ("python3.12", "manage.py", "runserver"), "python3.12 manage.py"),
    ("node", ("node", "--require", "dotenv/config", "server.js"), "node server.js"),
    ("node", ("node", "-e", "console.log(1)"), "node"),
    ("node", ("node", "-p", "1+1"), "node"),
    ("java", ("java", "-Xmx1g", "-Dx=y", "-jar", "/opt/app.jar", "--spring.profiles=prod"),
     "java app.jar"),
    ("java", ("java", "-cp", "lib/*:app.jar", "com.shop.Main"), "java com.shop.Main"),
    ("java", ("java", "-p", "mods", "-m", "shop/com.shop.Main"), "java com.shop.Main"),
    ("ruby", ("ruby", "-I", "lib", "bin/rails"), "ruby rails"),
    ("bash", ("bash", "-c", "sleep 1"), "bash"),
    ("bash", ("/bin/bash", "./deploy.sh"), "bash deploy.sh"),
    ("nginx", ("nginx: master process /usr/sbin/nginx",), "nginx"),
    ("curl", ("curl", "http://x/"), "curl"),
    ("python3", ("python3", "--", "tool.py"), "python3 tool.py"),
])
def test_interpreters_and_plain(name, args, want):
    assert service_name(name, args) == want


def test_interpreter_list_is_configurable():
    assert service_name("python3", ("python3", "app.py"), interpreters=frozenset({"node"})) == "python3"
    assert service_name("myvm", ("myvm", "job.x"), interpreters=frozenset({"myvm"})) == "myvm job.x"


def test_rule_order():
    args = ("python3", "app.py")
    assert service_name("python3", args, container_id=CID, container_name="checkout-7f9c",
                        systemd_unit="shop.service") == "checkout-7f9c"
    assert service_name("python3", args, container_id=CID, systemd_unit="shop.service") == CID[:12]
    assert service_name("python3", args, systemd_unit="shop.service") == "shop"
    assert service_name("nginx", (), systemd_unit="nginx.service") == "nginx"


@pytest.mark.parametrize("unit", ["user@0.service", "user-runtime-dir@1000.service",
                                  "getty@tty1.service", "session-3.scope", "init.scope", ".service"])
def test_generic_units_fall_through(unit):
    assert service_name("python3", ("python3", "app.py"), systemd_unit=unit) == "python3 app.py"


def test_docker_container_name(tmp_path):
    d = tmp_path / "containers" / CID
    d.mkdir(parents=True)
    (d / "config.v2.json").write_text(json.dumps({"ID": CID, "Name": "/checkout-7f9c"}))
    assert docker_container_name(CID, str(tmp_path)) == "checkout-7f9c"
    assert docker_container_name("0" * 64, str(tmp_path)) is None
    (d / "config.v2.json").write_text("{not json")
    assert docker_container_name(CID, str(tmp_path)) is None
    (d / "config.v2.json").write_text('["a list"]')
    assert docker_container_name(CID, str(tmp_path)) is None

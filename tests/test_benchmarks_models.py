"""The benchmark models' registry (benchmarks/models/): every model named once, with a
server per protocol it speaks; a model whose package is missing is skipped with the reason;
a few models started for real (threadpool, prefork), and prefork leaves no child behind."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from benchmarks.harness import (
    build_loadgen, free_port, one_run, process_tree, start_server, stop_server)
from benchmarks.models import MODELS, PROTOCOLS, REGISTRY, Registry, available, models_for
from benchmarks.models.__main__ import main as models_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = "no_such_package_for_reactor_benchmarks"


# -- the registry -----------------------------------------------------------------------------

def test_every_model_has_a_unique_name_a_callable_and_declared_protocols():
    assert len(MODELS) >= 30
    for name, model in MODELS.items():
        assert model.name == name
        assert model.speaks, name
        assert set(model.speaks) <= set(PROTOCOLS), (name, model.speaks)
        for protocol, server in model.servers.items():
            assert callable(server.serve), (name, protocol)
            assert all(isinstance(package, str) for package in server.needs)
    assert len(set(REGISTRY.order)) == len(REGISTRY.order)     # (protocol, name) once each
    for protocol in PROTOCOLS:
        names = models_for(protocol)
        assert names and len(names) == len(set(names)), protocol


def test_each_suite_gets_its_models_from_the_registry():
    echo = models_for("echo")
    assert echo[0] == "reactor"
    for name in ("reactor-workers", "asyncio-protocol", "asyncio-streams", "threads",
                 "threadpool", "prefork", "selectors-minimal", "uvloop", "gevent", "twisted",
                 "trio", "curio"):
        assert name in echo
    assert models_for("echo-tls") == ["reactor-tls", "asyncio-tls"]
    assert models_for("echo-udp") == ["reactor-udp", "asyncio-udp", "selectors-minimal-udp"]
    assert models_for("echo-framed") == ["reactor-length", "asyncio-streams-length",
                                         "asyncio-protocol-length"]
    assert models_for("http") == ["reactor", "asyncio-floor", "http.server", "aiohttp",
                                  "aiohttp-pure", "uvicorn-httptools", "uvicorn-h11"]
    assert models_for("http", idle=True) == ["reactor", "asyncio-floor", "aiohttp"]
    assert models_for("websocket") == ["reactor", "websockets", "websockets-uvloop", "aiohttp"]
    assert models_for("websocket-broadcast") == ["reactor-broadcast", "websockets", "aiohttp"]
    from benchmarks import echo, framing, protected, tls, udp, web, websocket
    assert echo.MODELS == models_for("echo") and tls.TLS_MODELS == models_for("echo-tls")
    assert udp.UDP_MODELS == models_for("echo-udp")
    assert framing.FRAMED_MODELS == models_for("echo-framed")
    assert protected.PROTECTED_MODELS == ["reactor", "reactor-protected"]
    assert web.MODELS == models_for("http")
    assert websocket.BROADCAST_MODELS == models_for("websocket-broadcast")


def test_a_model_whose_package_is_missing_is_skipped_with_a_reason_naming_it(capsys):
    registry = Registry()

    @registry.register("imaginary", speaks=("echo",), needs=("asyncio", MISSING),
                       note="needs a package nobody has")
    def serve_imaginary(port, options):
        raise AssertionError("a model that cannot run must not be started")

    why = registry.available("imaginary")
    assert why == "%s not installed" % MISSING
    assert registry.available("imaginary", "echo") == why
    assert registry.models_for("echo") == ["imaginary"]       # listed: the suites skip it
    assert models_main(["imaginary", str(free_port())], registry=registry) == 2
    assert "skip: %s not installed" % MISSING in capsys.readouterr().err


def test_what_is_installed_is_decided_by_find_spec_alone():
    for name, model in MODELS.items():
        missing = [package for package in model.needs if importlib.util.find_spec(package) is None]
        assert (available(name) is None) == (not missing), name
        for package in missing:
            assert package in available(name)


def test_available_says_why_a_model_cannot_serve_a_protocol():
    assert "no model named" in available("no-such-model")
    assert available("asyncio-floor", "http-static") == "fixed reply only"
    assert available("uvicorn-h11", "http-static") == "serves no files"
    assert available("reactor-tls", "echo") == "reactor-tls does not speak echo"
    assert available("reactor", "echo") is None and available("threadpool") is None


def test_the_entry_point_picks_the_server_for_the_protocol_asked():
    assert REGISTRY.server("reactor")[0] == "echo"           # echo when the model speaks it
    assert REGISTRY.server("reactor", "http")[1].serve is not REGISTRY.server("reactor")[1].serve
    assert REGISTRY.server("websockets")[0] == "websocket"   # its only function
    with pytest.raises(ValueError, match="say which with --protocol"):
        REGISTRY.server("aiohttp")


def test_a_root_without_a_static_model_is_refused(capsys, tmp_path):
    assert models_main(["asyncio-floor", str(free_port()), "--root", str(tmp_path)]) == 2
    assert "skip: fixed reply only" in capsys.readouterr().err


def test_registering_a_protocol_twice_or_an_unknown_one_is_refused():
    registry = Registry()
    registry.register("twice", speaks=("echo",))(lambda port, options: None)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("twice", speaks=("echo",))(lambda port, options: None)
    with pytest.raises(ValueError, match="unknown protocol"):
        registry.register("typo", speaks=("ecko",))
    with pytest.raises(ValueError, match="tuple of protocols"):
        registry.register("string", speaks="echo")


def test_python_m_benchmarks_models_lists_the_registry():
    result = subprocess.run([sys.executable, "-m", "benchmarks.models"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    for name in ("threadpool", "prefork", "reactor-workers", "trio", "curio", "protocols:"):
        assert name in result.stdout


def test_no_model_is_dispatched_by_a_computed_name():
    """grep finds every model: no ``globals()[...]`` lookup anywhere in benchmarks/."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "benchmarks")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as handle:
                    if "globals()[" in handle.read():
                        found.append(os.path.join(folder, name))
    assert not found


# -- servers started for real ---------------------------------------------------------------

def echo_through(port, connections=3, payload=b"x" * 5000):
    """Open ``connections`` at once, send ``payload`` on each, read it all back."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5)
             for _ in range(connections)]
    try:
        for sock in socks:
            sock.sendall(payload)
        for sock in socks:
            received = b""
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                received += chunk
            assert received == payload
    finally:
        for sock in socks:
            sock.close()


def alive(pid):
    """Whether ``pid`` still runs (a zombie has died: it waits only to be reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.fixture
def started():
    """start_server(model) for the test; whatever is left is killed afterwards."""
    servers = []

    def start(model):
        port = free_port()
        servers.append(start_server(model, port, timeout=10))
        return servers[-1], port
    yield start
    for server in servers:
        for pid in process_tree(server.pid) if server.poll() is None else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.kill()
        server.communicate()


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/stat"),
                                reason="the process checks read /proc")


@needs_proc
def test_threadpool_echoes_and_stops_on_sigterm(started):
    server, port = started("threadpool")
    echo_through(port, connections=5)
    stop_server(server)
    assert server.returncode == 0


@needs_proc
def test_prefork_echoes_and_leaves_no_child_after_sigterm(started):
    server, port = started("prefork")
    children = [pid for pid in process_tree(server.pid) if pid != server.pid]
    assert len(children) == 2 * (os.cpu_count() or 1)
    echo_through(port, connections=len(children))
    stop_server(server)
    assert server.returncode == 0
    assert wait_gone(children) == []


@needs_proc
def test_prefork_children_die_with_a_killed_parent(started):
    server, port = started("prefork")
    children = [pid for pid in process_tree(server.pid) if pid != server.pid]
    server.kill()                                 # no SIGTERM to pass on: PR_SET_PDEATHSIG
    server.wait()
    assert wait_gone(children) == []


@needs_proc
def test_a_multi_process_models_cpu_counts_its_children():
    """prefork's parent only waits; the measured CPU is its children's, so it is not 0."""
    run = one_run("prefork", (2, 64, 1), build_loadgen(), 0.2, 0.6)
    assert run["requests_per_second"] > 0 and run["errors"] == 0
    assert run["server_cpu_us_per_request"] > 1.0

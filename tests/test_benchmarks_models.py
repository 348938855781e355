"""The benchmark models' registry (benchmarks/models/): every model named once, with a
server per protocol it speaks; a model whose package is missing is skipped with the reason;
one asyncio program registered per loop (asyncio, reactor.aio, uvloop); a few models started
for real (threadpool, prefork, each asyncio program on each loop), and prefork leaves no
child behind."""

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
from benchmarks.models import (
    MODELS, PROTOCOLS, REGISTRY, Registry, available, models_for, programs_for)
from benchmarks.models.__main__ import main as models_main
from benchmarks.models.support import ASYNCIO_LOOPS, use_loop

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
    for name in ("reactor-workers", "asyncio-protocol", "reactor-aio-protocol",
                 "asyncio-streams", "reactor-aio-streams", "threads", "threadpool", "prefork",
                 "selectors-minimal", "uvloop", "uvloop-streams", "gevent", "twisted", "trio",
                 "curio"):
        assert name in echo
    assert models_for("echo-tls") == ["reactor-tls", "asyncio-tls"]
    assert models_for("echo-udp") == ["reactor-udp", "asyncio-udp", "selectors-minimal-udp"]
    assert models_for("echo-framed") == ["reactor-length", "asyncio-streams-length",
                                         "asyncio-protocol-length"]
    assert models_for("http") == ["reactor", "asyncio-floor", "http.server", "aiohttp",
                                  "aiohttp-uvloop", "aiohttp-reactor-aio", "aiohttp-pure",
                                  "uvicorn-httptools", "uvicorn-h11"]
    assert models_for("http", idle=True) == ["reactor", "asyncio-floor", "aiohttp",
                                             "aiohttp-uvloop", "aiohttp-reactor-aio"]
    assert models_for("http-static") == ["reactor", "http.server", "aiohttp", "aiohttp-pure"]
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


def test_each_asyncio_program_runs_on_each_loop_as_a_model_of_its_own():
    """The echo programs and aiohttp's hello each name one model per loop, in table order."""
    assert programs_for("echo") == [
        ("asyncio Protocol echo", [("asyncio", "asyncio-protocol"),
                                   ("reactor.aio", "reactor-aio-protocol"),
                                   ("uvloop", "uvloop")]),
        ("asyncio streams echo", [("asyncio", "asyncio-streams"),
                                  ("reactor.aio", "reactor-aio-streams"),
                                  ("uvloop", "uvloop-streams")])]
    assert programs_for("http") == [
        ("aiohttp hello", [("asyncio", "aiohttp"), ("uvloop", "aiohttp-uvloop"),
                           ("reactor.aio", "aiohttp-reactor-aio")])]
    assert programs_for("http-static") == [] and programs_for("websocket") == []
    for protocol in ("echo", "http"):
        for program, members in programs_for(protocol):
            for loop, name in members:
                needs = MODELS[name].servers[protocol].needs
                assert set(ASYNCIO_LOOPS[loop]) <= set(needs), (name, loop)
    assert available("aiohttp-uvloop", "http-static") == available("aiohttp-reactor-aio",
                                                                   "http-static")
    assert available("aiohttp-reactor-aio", "http-static") == "hello only (the loop comparison)"


def test_the_reactor_aio_models_need_only_the_standard_library():
    """reactor.aio is part of reactor: its echo models run wherever reactor does."""
    for name in ("reactor-aio-protocol", "reactor-aio-streams"):
        assert MODELS[name].needs == () and available(name) is None
    assert MODELS["aiohttp-reactor-aio"].needs == ("aiohttp",)


@pytest.mark.parametrize("loop, module", [("asyncio", "asyncio"), ("uvloop", "uvloop"),
                                          ("reactor.aio", "reactor.aio")])
def test_use_loop_makes_asyncio_create_that_loop(loop, module):
    """After use_loop(loop), asyncio.new_event_loop() (as asyncio.run and aiohttp's run_app
    call it) makes that loop."""
    import asyncio
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop not installed")
    try:
        use_loop(loop)
        made = asyncio.new_event_loop()
        made.close()
    finally:
        asyncio.set_event_loop_policy(None)
    assert type(made).__module__.startswith(module)
    with pytest.raises(ValueError, match="no asyncio loop named"):
        use_loop("tokio")


def test_a_program_names_its_loop_and_runs_once_on_each():
    """program and loop come together; a second model for the same program and loop is
    refused; a program on one loop alone is no comparison and is not listed."""
    registry = Registry()

    def serve(port, options):
        pass
    with pytest.raises(ValueError, match="go together"):
        registry.register("lonely", speaks=("echo",), program="p")
    registry.register("p-asyncio", speaks=("echo",), program="p", loop="asyncio")(serve)
    registry.register("q-asyncio", speaks=("echo",), program="q", loop="asyncio")(serve)
    assert registry.programs_for("echo") == []
    with pytest.raises(ValueError, match="p-asyncio already runs 'p' on asyncio"):
        registry.register("again", speaks=("echo",), program="p", loop="asyncio")(serve)
    registry.register("p-uvloop", speaks=("echo",), program="p", loop="uvloop")(serve)
    assert registry.programs_for("echo") == [("p", [("asyncio", "p-asyncio"),
                                                    ("uvloop", "p-uvloop")])]


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


# -- one asyncio program on each loop, started for real --------------------------------------

def on_each_loop(protocol):
    """pytest params: each model running an asyncio program, skipped (with the reason) where
    its packages are missing."""
    return [pytest.param(name, id=name, marks=pytest.mark.skipif(
                available(name) is not None, reason=str(available(name))))
            for _, members in programs_for(protocol) for _, name in members]


@needs_proc
@pytest.mark.parametrize("model", on_each_loop("echo"))
def test_each_echo_program_echoes_on_each_loop_and_stops_on_sigterm(started, model):
    """asyncio-protocol and asyncio-streams, on asyncio, reactor.aio and uvloop: the bytes
    come back on several connections at once, and SIGTERM ends the server cleanly."""
    server, port = started(model)
    echo_through(port, connections=4, payload=b"y" * 300000)
    stop_server(server)
    assert server.returncode == 0


@needs_proc
@pytest.mark.parametrize("model", on_each_loop("http"))
def test_aiohttp_hello_answers_on_each_loop_and_stops_on_sigterm(model):
    """aiohttp's hello on asyncio, uvloop and reactor.aio: two keep-alive GETs answered, and
    SIGTERM ends the server cleanly."""
    from benchmarks.harness import serving
    from benchmarks.web import check
    with serving(model) as (server, port):
        check(port, "/")
    assert server.returncode == 0


@needs_proc
def test_the_protocol_echo_on_reactor_aio_reports_its_idle_connections():
    """--measure-idle on reactor.aio: SIGUSR1 prints "idle HEAP RSS COUNT" and COUNT is the
    connections open (the echo suite's idle-memory measure works on this loop too)."""
    port = free_port()
    server = start_server("reactor-aio-protocol", port, "--measure-rss", timeout=10)
    clients = []
    try:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        deadline = time.monotonic() + 5
        while True:
            server.send_signal(signal.SIGUSR1)
            word, heap, resident, count = server.stdout.readline().split()
            if int(count) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (word, int(heap), int(count)) == ("idle", 0, 3) and int(resident) > 0
    finally:
        for sock in clients:
            sock.close()
        stop_server(server)
    assert server.returncode == 0

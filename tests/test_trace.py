"""The loop tracer (reactor/trace.py) and `python -m reactor trace-report`.

A trace must open in Perfetto: every event is checked against the
trace-event format's required keys and types. The tracer must leave no
trace of itself when stopped (the untraced pass is the class's own
method again), keep the loop's failure policy, and stop at its size cap
with a valid file.
"""

import glob
import json
import logging
import os
import re
import signal
import socket
import threading
import xml.etree.ElementTree as ElementTree

import pytest

from reactor import FakeClock, LoopClosedError, Reactor
from reactor import trace
from reactor.apps.echo import EchoProtocol
from reactor.cli import main
from reactor.loop import EventLoop
from reactor.streams import StreamTransport

from .support.loops import run_passes, run_until
from .support.peers import Peer
from .support.processes import start_cli_on_port, stop_processes

#: What a trace-event needs, by phase, for Perfetto and chrome://tracing to load it.
REQUIRED = {"X": ("name", "cat", "ph", "ts", "dur", "pid", "tid"),
            "C": ("name", "ph", "ts", "pid", "tid", "args"),
            "M": ("name", "ph", "pid", "tid", "args")}


def load_trace(path):
    """Parse ``path`` and check the trace-event schema; return its events."""
    with open(path, encoding="ascii") as handle:
        data = json.load(handle)
    assert data["displayTimeUnit"] == "ms" and isinstance(data["otherData"], dict)
    events = data["traceEvents"]
    last_ts = {}
    for event in events:
        assert event["ph"] in REQUIRED, event
        for key in REQUIRED[event["ph"]]:
            assert key in event, (key, event)
        assert isinstance(event["name"], str) and event["name"]
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert isinstance(event.get("ts", 0), (int, float)) and event.get("ts", 0) >= 0
        if event["ph"] == "X":
            assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0, event
            assert event["ts"] >= last_ts.get(event["cat"], 0), event
            last_ts[event["cat"]] = event["ts"]
        if event["ph"] == "C":
            assert all(isinstance(value, (int, float)) for value in event["args"].values())
    return events


def complete(events, category):
    """The complete events of ``category``, in file order."""
    return [e for e in events if e["ph"] == "X" and e["cat"] == category]


def socketpair_echo(loop):
    """An EchoProtocol transport on one end of a socketpair; return the other end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    StreamTransport(loop, ours, EchoProtocol()).start()
    return theirs


def echo_through(loop, peer, messages):
    """Send each message and run passes until it is echoed back whole."""
    for message in messages:
        peer.sendall(message)
        received = bytearray()

        def echoed():
            try:
                received.extend(peer.recv(65536))
            except BlockingIOError:
                pass
            return len(received) >= len(message)
        run_until(loop, echoed)
        assert bytes(received) == message


def test_a_traced_echo_writes_valid_trace_event_json(tmp_path):
    """A traced socketpair echo: valid schema, qualified names, select waits, bytes that add up."""
    path = str(tmp_path / "echo.json")
    loop = Reactor()
    try:
        peer = socketpair_echo(loop)
        loop.start_trace(path)
        messages = [b"x" * size for size in (1, 10, 100, 1000, 10000, 60000)] * 3
        echo_through(loop, peer, messages)
        assert loop.stop_trace() == path
        peer.close()
    finally:
        loop.close()
    events = load_trace(path)
    sent = sum(len(m) for m in messages)
    reads = [e for e in complete(events, "io") if e["args"]["events"] == "read"]
    assert reads and all(e["name"] == "EchoProtocol.data_received (via StreamTransport."
                         "on_readable)" for e in reads)
    assert sum(e["args"]["bytes_in"] for e in reads) == sent
    assert sum(e["args"]["bytes_out"] for e in complete(events, "io")) == sent
    counters = [e["args"] for e in events if e["ph"] == "C" and e["name"] == "bytes"]
    assert counters[-1] == {"in": sent, "out": sent}
    assert len(complete(events, "select")) == len(complete(events, "pass")) >= len(messages)
    assert all(e["args"]["ready"] >= 0 for e in complete(events, "select"))


def test_stop_trace_puts_back_the_untraced_pass(tmp_path):
    """After stop_trace the loop runs the class's own _run_once and the file no longer grows."""
    path = str(tmp_path / "t.json")
    loop = Reactor(clock=FakeClock())
    try:
        assert "_run_once" not in vars(loop)
        loop.start_trace(path)
        assert "_run_once" in vars(loop)
        run_passes(loop, 3)
        loop.stop_trace()
        assert "_run_once" not in vars(loop) and loop._run_once.__func__ is EventLoop._run_once
        size = os.path.getsize(path)
        ran = []
        loop.call_soon(ran.append, 1)
        run_passes(loop, 3)
        assert ran == [1] and os.path.getsize(path) == size
        assert loop.stop_trace() is None                 # idempotent
    finally:
        loop.close()
    assert len(complete(load_trace(path), "pass")) == 3


def test_a_raising_callback_under_tracing_follows_the_failure_policy(tmp_path):
    """Under tracing, a raising callback or reader goes to the exception handler; the rest run."""
    path = str(tmp_path / "t.json")
    loop = Reactor(clock=FakeClock())
    contexts, ran = [], []
    a, b = socket.socketpair()
    try:
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx["message"]))

        def broken():
            raise KeyError("boom")

        def broken_reader():
            raise ValueError("bad read")
        loop.add_reader(a, broken_reader)
        b.send(b"!")
        loop.start_trace(path)
        loop.call_soon(broken)
        loop.call_soon(ran.append, "after")
        run_passes(loop, 2)
        loop.remove_reader(a)
        loop.stop_trace()
    finally:
        loop.close()
        a.close()
        b.close()
    assert ran == ["after"]
    assert any("broken raised KeyError" in m for m in contexts)
    assert any("raised ValueError: bad read" in m for m in contexts)
    events = load_trace(path)
    assert any(e["name"].endswith("broken") for e in complete(events, "callback"))
    assert any(e["name"].endswith("broken_reader") for e in complete(events, "io"))


def test_timers_fired_are_recorded_as_timer_events(tmp_path):
    """A timer that fires shows as 'expire timers' (fired: 1) and its callback under cat timer."""
    path = str(tmp_path / "t.json")
    clock = FakeClock()
    loop = Reactor(clock=clock)
    fired = []

    def tick():
        fired.append(clock())
    try:
        loop.call_later(1.0, tick)
        loop.start_trace(path)
        run_passes(loop, 2)
        clock.advance(1.5)
        run_passes(loop, 2)
        loop.stop_trace()
    finally:
        loop.close()
    timers = complete(load_trace(path), "timer")
    assert fired == [1.5]
    assert [e["args"] for e in timers if e["name"] == "expire timers"] == [{"fired": 1}]
    assert any(e["name"].endswith("tick") for e in timers)


def test_the_size_cap_stops_tracing_with_a_warning_and_valid_json(tmp_path, monkeypatch, caplog):
    """At max_bytes the tracer warns, steps aside and leaves a valid file no larger than the cap."""
    monkeypatch.setattr(trace, "FLUSH_EVENTS", 20)
    path = str(tmp_path / "t.json")
    loop = Reactor(clock=FakeClock())
    try:
        loop.start_trace(path, max_bytes=4096)
        with caplog.at_level(logging.WARNING, logger="reactor"):
            for _ in range(200):
                loop.call_soon(len, "")
                loop.run_once()
        assert "_run_once" not in vars(loop)
        assert any("reached its cap of 4096 bytes" in r.getMessage() for r in caplog.records)
        loop.call_soon(len, "")
        loop.run_once()                                   # the untraced pass, still working
    finally:
        loop.close()
    assert os.path.getsize(path) <= 4096
    assert 0 < len(complete(load_trace(path), "pass")) < 200


def test_loop_close_finishes_the_file_and_misuse_is_refused(tmp_path):
    """close() finishes a trace still running; tracing twice or on a closed loop is refused."""
    path = str(tmp_path / "t.json")
    loop = Reactor(clock=FakeClock())
    loop.start_trace(path)
    with pytest.raises(RuntimeError, match="already tracing"):
        loop.start_trace(str(tmp_path / "other.json"))
    run_passes(loop, 2)
    loop.close()
    assert len(complete(load_trace(path), "pass")) == 2
    with pytest.raises(LoopClosedError):
        loop.start_trace(path)
    with pytest.raises(OSError):
        Reactor().start_trace(str(tmp_path / "no" / "such" / "dir.json"))


@pytest.fixture(scope="module")
def echo_trace(tmp_path_factory):
    """A trace of `python -m reactor echo --trace FILE` after 300 echoes and SIGINT."""
    path = str(tmp_path_factory.mktemp("cli") / "echo.json")
    process, address = start_cli_on_port("echo", "--port", "0", "--trace", path)
    try:
        with Peer(None, address) as peer:
            for i in range(300):
                message = b"echo %d\n" % i
                assert peer.exchange(message) == message
    finally:
        process.send_signal(signal.SIGINT)
        stop_processes([process])
    assert process.returncode == 0
    return path


def test_cli_echo_trace_under_load_is_valid_after_sigint(echo_trace):
    """`echo --trace FILE` under 300 echoes, stopped by SIGINT, leaves a valid, complete trace."""
    events = load_trace(echo_trace)
    sent = sum(len(b"echo %d\n" % i) for i in range(300))
    reads = [e for e in complete(events, "io") if e["name"].startswith("EchoProtocol.")]
    assert sum(e["args"]["bytes_in"] for e in reads) == sent
    names = {e["name"] for e in events if e["ph"] == "X"}
    assert any(name.startswith("reactor.accept.") for name in names)     # the listener
    assert not any(" at 0x" in name for name in names)                   # no reprs
    assert complete(events, "select") and complete(events, "pass")


def test_trace_report_prints_its_sections_and_draws_an_svg(echo_trace, tmp_path, capsys):
    """trace-report prints shares, slowest callbacks and a histogram; --svg is well-formed."""
    svg = str(tmp_path / "t.svg")
    assert main(["trace-report", echo_trace, "--svg", svg, "--top", "3"]) == 0
    out = capsys.readouterr().out
    for section in ("passes", "where the time went:", "select wait", "I/O dispatch",
                    "callbacks", "loop overhead", "slowest callbacks (top 3",
                    "EchoProtocol.data_received", "pass lengths, select wait excluded", "timeline written to"):
        assert section in out, section
    root = ElementTree.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {element.text for element in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"passes", "select wait", "I/O dispatch", "callbacks", "timers"} <= texts
    assert any(text.startswith("time since the first pass (") for text in texts)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) > 10


@pytest.mark.parametrize("content, message", [
    ("hello, not json", "is not valid JSON"),
    ('{"displayTimeUnit": "ms", "traceEvents": [\n{"ph":"X","cat":"pass"', "is not valid JSON"),
    ('{"some": "json"}', "is JSON but not a trace"),
    ('{"traceEvents": []}', "has no loop passes"),
])
def test_trace_report_refuses_what_is_not_a_finished_trace(tmp_path, capsys, content, message):
    """trace-report on garbage, a truncated trace or foreign JSON exits 1 with one clear line."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["trace-report", str(path)]) == 1
    err = capsys.readouterr().err
    assert "trace-report: error:" in err and message in err and "Traceback" not in err


def wait_for_log(process, pattern, count, timeout=10.0):
    """Read the process's stderr until ``count`` lines match ``pattern``; fail after ``timeout``."""
    found = []

    def read():
        for line in process.stderr:
            if re.search(pattern, line):
                found.append(line)
                if len(found) == count:
                    return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert len(found) == count, "only %d %r lines in %.0f s" % (len(found), pattern, timeout)


def test_workers_write_one_trace_per_worker(tmp_path):
    """With --workers 2, each worker traces to FILE with its pid inserted; all are valid."""
    path = str(tmp_path / "w.json")
    process, address = start_cli_on_port("echo", "--port", "0", "--workers", "2",
                                         "--trace", path)
    try:
        wait_for_log(process, r"is accepting", 2)       # SIGTERM before that kills a worker
        for i in range(20):
            with Peer(None, address) as peer:
                assert peer.exchange(b"w%d" % i) == b"w%d" % i
    finally:
        process.send_signal(signal.SIGTERM)
        stop_processes([process])
    files = glob.glob(str(tmp_path / "w.*.json"))
    assert process.returncode == 0 and len(files) >= 2 and not os.path.exists(path)
    for name in files:
        assert complete(load_trace(name), "pass")


@pytest.mark.parametrize("extra, words", [
    (["--trace-max-mb", "0"], "--trace-max-mb must be"),
    (["--trace-max-mb", "nan"], "--trace-max-mb must be"),
    ([], "No such file or directory"),
])
def test_a_bad_trace_option_stops_the_server_before_it_listens(tmp_path, capsys, extra, words):
    """A bad --trace-max-mb or an unwritable --trace FILE exits 1 with one line, listening on nothing."""
    path = str(tmp_path / "missing" / "t.json")
    assert main(["echo", "--port", "0", "--trace", path] + extra) == 1
    err = capsys.readouterr().err
    assert "echo: error:" in err and words in err and "listening" not in err


def test_debug_mode_still_warns_of_slow_callbacks_under_tracing(tmp_path, caplog):
    """The traced pass replaces debug mode's timed one and keeps its slow-callback warning."""
    loop = Reactor(clock=FakeClock(), debug=True, slow_callback_seconds=0.0)
    try:
        loop.start_trace(str(tmp_path / "t.json"))
        loop.call_soon(len, "")
        with caplog.at_level(logging.WARNING, logger="reactor"):
            loop.run_once()
        loop.stop_trace()
    finally:
        loop.close()
    assert any(r.getMessage().startswith("slow callback builtins.len took")
               for r in caplog.records)


def test_a_keyboard_interrupt_mid_pass_leaves_loop_and_trace_usable(tmp_path):
    """A BaseException out of a traced callback leaves run() as untraced; the trace goes on."""
    path = str(tmp_path / "t.json")
    loop = Reactor(clock=FakeClock())
    ran = []

    def interrupt():
        raise KeyboardInterrupt
    try:
        loop.start_trace(path)
        loop.call_soon(interrupt)
        with pytest.raises(KeyboardInterrupt):
            loop.run(stop_on_signals=False)
        loop.call_soon(ran.append, "later")
        loop.call_soon(loop.stop)
        loop.run(stop_on_signals=False)
        loop.stop_trace()
    finally:
        loop.close()
    assert ran == ["later"]
    assert any(e["name"].endswith("append") for e in complete(load_trace(path), "callback"))


def test_a_write_error_stops_tracing_and_the_loop_goes_on(tmp_path, monkeypatch, caplog):
    """When the trace file cannot be written (disk full), tracing stops with an error; the loop runs."""
    loop = Reactor(clock=FakeClock())
    try:
        loop.start_trace(str(tmp_path / "t.json"))

        def disk_full(self, text):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(trace.TraceFile, "_write", disk_full)
        monkeypatch.setattr(trace, "FLUSH_EVENTS", 1)
        with caplog.at_level(logging.ERROR, logger="reactor"):
            loop.run_once()
        assert "_run_once" not in vars(loop)
        assert any("cannot write" in r.getMessage() and "No space left" in r.getMessage()
                   for r in caplog.records)
        ran = []
        loop.call_soon(ran.append, 1)
        loop.run_once()
        assert ran == [1]
    finally:
        loop.close()

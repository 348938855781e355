"""``python -m reactor`` as a user runs it: serving, stopping, and refusing bad options.

Each test starts the real command in a subprocess on 127.0.0.1 (or a Unix
socket), bounds every wait, and kills what it started, whatever happens.
"""

import contextlib
import re
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest

from .support.processes import ROOT, run_cli

#: Longest wait for a server to say where it listens, or to exit.
TIMEOUT_SECONDS = 20


@contextlib.contextmanager
def running(*args, stop_signal=signal.SIGTERM):
    """Run ``python -m reactor ARGS``; yield the process and where it logged it listens.

    The address is ``(host, port)``, or a Unix socket's path. On the way out
    the server gets ``stop_signal`` and is killed if it has not exited within
    the timeout; its stderr is then in ``process.stderr_text``.
    """
    process = subprocess.Popen([sys.executable, "-m", "reactor"] + list(args), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(process, TIMEOUT_SECONDS)
        match = re.search(r"listening on (\S+)", line)
        assert match, "no 'listening on' line: %r" % line
        where = match.group(1)
        host, _, port = where.rpartition(":")
        yield process, ((host.strip("[]"), int(port)) if port.isdigit() else where)
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal)
        try:
            _, rest = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            _, rest = process.communicate()
        process.stderr_text = rest


# -- serving and stopping ------------------------------------------------------------------


def test_empty_host_listens_on_every_interface():
    """`echo --host ''` listens on every interface: 127.0.0.1 reaches it on the logged port."""
    with running("echo", "--host", "", "--port", "0") as (process, (host, port)):
        assert host in ("0.0.0.0", "::")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"any interface")
            assert _read_exactly(sock, 13) == b"any interface"
    assert process.returncode == 0, process.stderr_text


def test_chat_stop_line_counts_the_lines_it_sent():
    """The chat server's last log line counts each line it sent as a frame out."""
    with running("chat", "--port", "0") as (process, address):
        with socket.create_connection(address, timeout=5) as sock:
            assert _read_lines(sock, 1) == ["welcome to reactor chat; enter a nick"]
            sock.sendall(b"alice\n/who\n")
            assert _read_lines(sock, 2) == ["* you are alice, in #lobby; /help lists commands",
                                            "* in #lobby: alice"]
    assert process.returncode == 0, process.stderr_text
    assert "frames_in=2 frames_out=3" in process.stderr_text, process.stderr_text


def test_chat_max_backlog_disconnects_a_member_who_does_not_read():
    """`chat --max-backlog` caps a member's send buffer: a stuck reader is cut off, the room
    told, and the stop line counts it under slow_consumer."""
    with running("chat", "--port", "0", "--max-backlog", "4096") as (process, address):
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(5)
        talker = socket.create_connection(address, timeout=5)
        try:
            stuck.connect(address)
            stuck.sendall(b"stuck\n")                 # and never reads again
            talker.sendall(b"talker\n")
            assert _read_lines(talker, 3)[1:] == ["* you are talker, in #lobby; /help lists "
                                                  "commands", "* stuck joined #lobby"]
            talker.setblocking(False)
            heard = b""
            deadline = time.monotonic() + TIMEOUT_SECONDS
            while b"\n" not in heard:
                assert time.monotonic() < deadline, "stuck member never cut off"
                talker.setblocking(True)
                talker.sendall(b"z" * 4000 + b"\n")
                talker.setblocking(False)
                try:
                    heard += talker.recv(4096)
                except BlockingIOError:
                    pass
            assert heard == b"* stuck was disconnected (slow consumer)\n"
        finally:
            stuck.close()
            talker.close()
    assert process.returncode == 0, process.stderr_text
    assert "rejected: slow_consumer=1" in process.stderr_text, process.stderr_text


def test_stats_interval_logs_on_a_steady_period():
    """`--stats-interval 0.1` logs a stats line every 0.1 s (loop.call_every) until stopped."""
    with running("echo", "--port", "0", "--stats-interval", "0.1") as (process, _):
        time.sleep(0.55)
    assert process.returncode == 0, process.stderr_text
    assert process.stderr_text.count(" stats ") >= 3, process.stderr_text


def test_sigterm_during_a_chat_flood_exits_within_the_grace():
    """One write of 32,000 lines to a room of 40 used to be decoded and fanned out in one
    callback, so SIGTERM waited for all of it (14.7 s with 100 members). Frames now go
    64 a pass and the rate is paid before delivery, so the signal is seen at once and
    the server exits within its grace (0.5 s) plus start-up slack."""
    with running("chat", "--port", "0", "--grace", "0.5") as (process, address):
        members = []
        stop = time.monotonic() + TIMEOUT_SECONDS
        try:
            for number in range(40):
                sock = socket.create_connection(address, timeout=5)
                members.append(sock)
                sock.sendall(b"m%d\n" % number)
            _read_lines(members[-1], 2)               # the last one is in the room
            for sock in members:
                sock.setblocking(False)
            members[0].setblocking(True)
            members[0].sendall(b"a\n" * 32000)
            members[0].setblocking(False)
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            while process.poll() is None and time.monotonic() < stop:
                for sock in members:                  # keep reading so no one is "slow"
                    try:
                        while sock.recv(65536):
                            pass
                    except (BlockingIOError, ConnectionError):
                        pass
                time.sleep(0.01)
            took = time.monotonic() - signalled
        finally:
            for sock in members:
                sock.close()
    assert process.returncode == 0, process.stderr_text
    assert took < 0.5 + 1.5, "exit took %.1f s after SIGTERM" % took


# -- refusing bad options in one line -----------------------------------------------------


@pytest.mark.parametrize("args,words", [
    (["echo", "--port", "70000"], ["port", "0-65535", "70000"]),
    (["echo", "--port", "-1"], ["port", "0-65535", "-1"]),
    (["echo", "--udp", "--port", "70000"], ["port", "0-65535", "70000"]),
    (["echo", "--port", "0", "--host", "no.such.host.invalid"],
     ["cannot resolve 'no.such.host.invalid'"]),
    (["chat", "--port", "0", "--max-backlog", "-5"],
     ["--max-backlog must be a whole number of bytes >= 1, got -5"]),
    (["chat", "--port", "0", "--max-backlog", "0"], ["--max-backlog must be", "got 0"]),
    (["echo", "--port", "0", "--tls-handshake-timeout", "0"],
     ["--tls-handshake-timeout must be a finite number of seconds > 0, got 0"]),
    (["chat", "--port", "0", "--tls-handshake-timeout", "nan"],
     ["--tls-handshake-timeout must be", "got nan"]),
    (["echo", "--port", "0", "--grace", "-1"], ["--grace must be", "got -1"]),
    (["echo", "--port", "0", "--max-connections", "-1"], ["max_connections must be >= 0"]),
])
def test_a_bad_option_exits_1_with_one_line_naming_it(args, words):
    """A value argparse takes but the server cannot use: exit 1, one stderr line, no traceback."""
    result = run_cli(*args, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m reactor %s: error: " % args[0]), lines[0]
    assert [word for word in words if word not in lines[0]] == [], lines[0]


# -- helpers ----------------------------------------------------------------------------

def _read_line(process, timeout_seconds):
    """Return the next stderr line of ``process``; fail if none comes within the timeout."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        if not selector.select(timeout_seconds):
            raise AssertionError("no output within %s s" % timeout_seconds)
    return process.stderr.readline()


def _read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed after %r" % data
        data += chunk
    return data


def _read_lines(sock, count):
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, "closed after %r" % data
        data += chunk
    return data.decode().splitlines()

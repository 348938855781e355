"""`--workers N`: a supervisor and its worker processes, as a user runs them (real processes).

Each test starts `python -m reactor ... --workers N` on a free port, reads
its log (every line names its pid), signals it, and checks what clients
and the log saw. The supervisor's rules are in ``reactor/workers.py``.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import threading
import time
import urllib.request

import pytest

from .support.certs import CA, cert
from .support.processes import cpu_seconds, run_cli, start_cli, stop_processes

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc"),
                                reason="prefork workers need fork(); these tests read /proc")


class Supervised:
    """A `--workers` server in a subprocess, with its log collected line by line."""

    def __init__(self, *args, before=0):
        self.process, self.where = start_cli(*args, before=before)
        self.port = None if self.where.startswith("/") else int(self.where.rsplit(":", 1)[1])
        self.pid = self.process.pid
        self.lines = [self.process.listening_line.rstrip("\n")]
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern, count=1, timeout=10.0):
        """Wait until ``count`` log lines match ``pattern``; return their matches."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(re.compile(pattern).search, self.lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %d line(s) matching %r in:\n%s"
                                         % (count, pattern, "\n".join(self.lines)))
                self._changed.wait(left)

    def accepting(self, count, timeout=10.0):
        """Wait for ``count`` 'is accepting' lines; return the pids they name, in order."""
        matches = self.wait_for(r"worker (\d+) \(pid (\d+)\) is accepting", count, timeout)
        return [int(m.group(2)) for m in matches]

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self):
        stop_processes([self.process])
        self._reader.join(timeout=10)
        return self.process.returncode


@pytest.fixture
def supervised():
    """Start `--workers` servers; stop each at the end of the test."""
    started = []

    def start(*args, before=0):
        server = Supervised(*args, before=before)
        started.append(server)
        return server
    yield start
    for server in started:
        pids = worker_pids(server)
        server.stop()
        for pid in pids:                         # no orphan outlives a test
            wait_gone(pid, timeout=10)


def worker_pids(server):
    """Return the pids of every worker the supervisor said it started."""
    return [int(m.group(1)) for m in map(re.compile(r"started \(pid (\d+)").search, server.lines)
            if m]


def is_gone(pid):
    """Tell whether ``pid`` has exited (a zombie awaiting a reaper counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        assert time.monotonic() < deadline, "process %d is still running" % pid
        time.sleep(0.05)


def exchange(sock, payload):
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk
    return received


def echo_once(port, payload=b"ping\n"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return exchange(sock, payload)


# -- the supervisor and its workers ------------------------------------------------------

def test_both_workers_accept_on_one_port_each_with_its_own_socket(supervised):
    """`echo --workers 2` logs one 'listening on' line, starts two workers, and the kernel
    spreads connections over both (SIGUSR1 shows each worker's count and the sum)."""
    server = supervised("echo", "--port", "0", "--workers", "2")
    assert "2 workers, a socket each" in server.lines[0]
    first = server.accepting(2)
    assert len(set(first)) == 2
    for number in range(40):
        assert echo_once(server.port, b"n%d\n" % number) == b"n%d\n" % number
    server.signal(signal.SIGUSR1)
    stats = server.wait_for(r"stats worker (\d) \(pid \d+\): .*accepted=(\d+)", count=2)
    counts = {m.group(1): int(m.group(2)) for m in stats}
    assert set(counts) == {"0", "1"} and sum(counts.values()) == 40
    assert all(counts.values()), counts           # both served (2**-39 to fail by chance)
    total, = server.wait_for(r"stats all 2 workers: .*accepted=(\d+)")
    assert int(total.group(1)) == 40


def test_a_killed_worker_is_restarted_within_a_second(supervised):
    """kill -9 of a worker: the supervisor logs how it died and a new one accepts within 1 s."""
    server = supervised("echo", "--port", "0", "--workers", "2")
    victim = server.accepting(2)[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    server.wait_for(r"\(pid %d\) was killed by SIGKILL after [\d.]+ s; restarting in 0.1 s"
                    % victim)
    third = server.accepting(3, timeout=5)[2]
    assert time.monotonic() - killed_at < 1.0
    assert third not in (victim,)
    for number in range(10):
        assert echo_once(server.port) == b"ping\n"


def test_a_crash_loop_backs_off_and_costs_the_supervisor_little(supervised, tmp_path):
    """A worker that cannot start (its certificate went missing) is restarted after 0.1, 0.2,
    0.4 ... s, each exit logged; the supervisor's CPU stays low; once the file is back,
    the next restart serves again."""
    certfile, keyfile = cert("server")
    mine = str(tmp_path / "server.pem")
    shutil.copy(certfile, mine)
    server = supervised("echo", "--port", "0", "--workers", "1", "--tls-cert", mine,
                        "--tls-key", keyfile)
    victim, = server.accepting(1)
    os.remove(mine)
    cpu_before = cpu_seconds(server.pid)
    os.kill(victim, signal.SIGKILL)
    delays = server.wait_for(r"restarting in ([\d.]+) s", count=5, timeout=10)
    assert [float(m.group(1)) for m in delays] == [0.1, 0.2, 0.4, 0.8, 1.6]
    server.wait_for(r"worker 0 failed: .*No such file", count=4)
    assert cpu_seconds(server.pid) - cpu_before < 0.5
    shutil.copy(certfile, mine)
    server.accepting(2, timeout=10)               # the one killed, then the recovered one


def test_a_reload_under_a_stream_of_new_connections_refuses_none(supervised):
    """SIGHUP twice while a client opens connection after connection: every one is served,
    old workers retire only after their successors accept, and each retired one exits."""
    server = supervised("echo", "--port", "0", "--workers", "2", "--grace", "5")
    server.accepting(2)
    outcomes = {"served": 0, "failed": []}
    done = threading.Event()

    def client():
        while not done.is_set():
            try:
                if echo_once(server.port) == b"ping\n":
                    outcomes["served"] += 1
            except OSError as exc:
                outcomes["failed"].append(repr(exc))
    thread = threading.Thread(target=client)
    thread.start()
    try:
        for generation in (1, 2):
            time.sleep(0.3)
            server.signal(signal.SIGHUP)
            server.wait_for(r"reload done: generation %d serves" % generation)
        time.sleep(0.3)
    finally:
        done.set()
        thread.join(timeout=10)
    assert outcomes["failed"] == [] and outcomes["served"] > 20, outcomes
    server.wait_for(r"exited with status 0 after draining", count=4)
    assert not any("restarting" in line for line in server.lines)


def test_a_long_connection_outlives_the_reload_and_is_drained_not_cut(supervised):
    """A connection opened before SIGHUP keeps working after the new generation serves; its
    old worker exits once the client closes, well before the grace."""
    server = supervised("echo", "--port", "0", "--workers", "1", "--grace", "30")
    old, = server.accepting(1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as long_lived:
        assert exchange(long_lived, b"before\n") == b"before\n"
        server.signal(signal.SIGHUP)
        server.wait_for(r"reload done: generation 1 serves")
        server.wait_for(r"\[%d\] .*draining 1 open connection" % old)
        for number in range(5):
            assert exchange(long_lived, b"during %d\n" % number) == b"during %d\n" % number
        assert echo_once(server.port) == b"ping\n"          # new connections: the new worker
        assert not is_gone(old)
    closed_at = time.monotonic()
    server.wait_for(r"\(pid %d\) exited with status 0 after draining" % old)
    assert time.monotonic() - closed_at < 5.0


def test_sigterm_drains_every_worker_then_exits_0_with_no_orphans(supervised):
    """SIGTERM: an open connection is still served during the grace; when its client leaves,
    every worker exits, the supervisor exits 0, and no worker process is left."""
    server = supervised("echo", "--port", "0", "--workers", "2", "--grace", "30")
    server.accepting(2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as member:
        assert exchange(member, b"hello\n") == b"hello\n"
        server.signal(signal.SIGTERM)
        server.wait_for(r"SIGTERM: stopping 2 worker\(s\), 30 s grace")
        server.wait_for(r"draining 1 open connection")
        assert exchange(member, b"still served\n") == b"still served\n"
    assert server.process.wait(timeout=10) == 0
    server.wait_for(r"all workers have exited")
    for pid in worker_pids(server):
        wait_gone(pid, timeout=2)


def test_sigint_to_the_process_group_drains_once(supervised):
    """Ctrl-C signals the whole group: workers ignore SIGINT, the supervisor tells each to drain
    once (a second signal would end the grace), and the group exits 0."""
    server = supervised("echo", "--port", "0", "--workers", "2", "--grace", "30")
    server.accepting(2)
    os.kill(server.pid, signal.SIGINT)
    for pid in worker_pids(server):
        os.kill(pid, signal.SIGINT)                   # what the terminal would also do
    assert server.process.wait(timeout=10) == 0
    assert not any("end their grace now" in line for line in server.lines)


def test_workers_exit_on_their_own_when_the_supervisor_dies(supervised):
    """kill -9 of the supervisor: each worker reads EOF on its link, drains and exits."""
    server = supervised("echo", "--port", "0", "--workers", "2", "--grace", "1")
    pids = server.accepting(2)
    server.signal(signal.SIGKILL)
    server.wait_for(r"the supervisor is gone; draining and exiting", count=2)
    for pid in pids:
        wait_gone(pid, timeout=5)


def test_unix_socket_workers_share_one_socket_and_remove_its_file(supervised, tmp_path):
    """`--unix PATH --workers 2`: one shared socket; the supervisor removes the file on exit."""
    path = str(tmp_path / "workers.sock")
    server = supervised("echo", "--unix", path, "--workers", "2")
    assert server.where == path and "one shared socket" in server.lines[0]
    server.accepting(2)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        assert exchange(sock, b"unix\n") == b"unix\n"
    assert server.stop() == 0
    assert not os.path.exists(path)


def test_http_workers_answer_every_request_through_a_reload(supervised, tmp_path):
    """`http --root DIR --workers 2`: requests on fresh connections during SIGHUP all get 200."""
    (tmp_path / "index.html").write_text("<p>hello</p>")
    server = supervised("http", "--port", "0", "--root", str(tmp_path), "--workers", "2",
                        before=1)                 # "serving DIR" comes first
    server.accepting(2)
    url = "http://127.0.0.1:%d/" % server.port
    statuses = []
    deadline = time.monotonic() + 10
    reloaded_at = None
    while reloaded_at is None or time.monotonic() < reloaded_at + 0.3:
        assert time.monotonic() < deadline
        if len(statuses) == 20:
            server.signal(signal.SIGHUP)
        if reloaded_at is None and any("reload done" in line for line in server.lines):
            reloaded_at = time.monotonic()
        with urllib.request.urlopen(url, timeout=5) as response:
            statuses.append((response.status, response.read()))
    assert len(statuses) > 20 and set(statuses) == {(200, b"<p>hello</p>")}


def test_a_reload_rereads_the_certificate(supervised, tmp_path):
    """Certificate rotation is a SIGHUP: the new generation presents the file's new contents,
    while a TLS connection opened before goes on with the old one."""
    certfile, keyfile = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    for name, target in zip(cert("server"), (certfile, keyfile)):
        shutil.copy(name, target)
    server = supervised("echo", "--port", "0", "--workers", "1", "--grace", "30",
                        "--tls-cert", certfile, "--tls-key", keyfile)
    server.accepting(1)

    def names_presented():
        context = ssl.create_default_context(cafile=CA)
        context.check_hostname = False
        with context.wrap_socket(socket.create_connection(("127.0.0.1", server.port),
                                                          timeout=5)) as tls:
            return [value for field in tls.getpeercert()["subject"] for key, value in field
                    if key == "commonName"]
    assert names_presented() == ["localhost"]
    context = ssl.create_default_context(cafile=CA)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=5),
                             server_hostname="localhost") as before:
        assert exchange(before, b"old\n") == b"old\n"
        for name, target in zip(cert("wronghost"), (certfile, keyfile)):
            shutil.copy(name, target)
        server.signal(signal.SIGHUP)
        server.wait_for(r"reload done: generation 1 serves")
        assert names_presented() == ["wrong.example"]
        assert exchange(before, b"still\n") == b"still\n"


def test_chat_workers_share_rooms_through_redis_and_serve_the_web_port(supervised, redis):
    """`chat --workers 2 --redis URL --web-port W`: members spread over both workers hear each
    other once, /who lists them all, and every worker serves the page on the web port."""
    redis_port = redis.start()
    server = supervised("chat", "--port", "0", "--web-port", "0", "--workers", "2",
                        "--redis", "redis://127.0.0.1:%d" % redis_port)
    web_port = int(server.wait_for(r"also listening on \S+:(\d+) \(http\)")[0].group(1))
    server.accepting(2)
    members = []
    try:
        for nick in ("alice", "bob", "carol", "dave", "erin", "frank"):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(nick.encode() + b"\n")
            members.append((nick, sock, read_until(sock, b"/help lists commands\n")))
        server.signal(signal.SIGUSR1)
        stats = server.wait_for(r"stats worker \d \(pid \d+\): connections=(\d+)", count=2)
        assert all(int(m.group(1)) > 0 for m in stats), "the kernel gave one worker everyone"
        alice = members[0][1]
        alice.sendall(b"hello everyone\n")
        for nick, sock, _ in members[1:]:
            assert read_until(sock, b"alice: hello everyone\n").count(b"alice: hello") == 1
        alice.sendall(b"/who\n")
        received = read_until(alice, b"* in #lobby: ")
        while not re.search(rb"\* in #lobby: [^\n]*\n", received):
            received += read_until(alice, b"\n")
        who = re.search(rb"\* in #lobby: ([^\n]*)\n", received).group(1).decode()
        assert sorted(who.split(", ")) == sorted(nick for nick, _, _ in members)
        for _ in range(4):                     # each worker answers on the web port too
            with urllib.request.urlopen("http://127.0.0.1:%d/" % web_port, timeout=5) as page:
                assert page.status == 200
    finally:
        for _, sock, _ in members:
            sock.close()


def read_until(sock, marker, timeout=5.0):
    """Read from ``sock`` until ``marker`` has arrived; return what was read."""
    received = b""
    deadline = time.monotonic() + timeout
    while marker not in received:
        assert time.monotonic() < deadline, "no %r in %r" % (marker, received)
        chunk = sock.recv(65536)
        assert chunk, "closed before %r: %r" % (marker, received)
        received += chunk
    return received


# -- what --workers refuses ---------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["kv", "--workers", "2"], "kv keeps its keyspace in one process"),
    (["echo", "--udp", "--workers", "2"], "not --workers"),
    (["echo", "--workers", "0"], "--workers must be a whole number from 1 to 256, got 0"),
    (["chat", "--workers", "2"], "--redis"),
])
def test_workers_refused_with_a_reason(args, message):
    """--workers where it cannot work exits 1 with one line naming why."""
    result = run_cli(*args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr

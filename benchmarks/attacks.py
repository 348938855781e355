"""Attacks suite: the hostile clients of the attack report, against a live server.

Anchor pattern: the attack report's table (docs/PROTECTIONS.md, "Attacks
tried, and what held"). Each scenario starts ``python -m reactor ...`` from
a checkout (``--tree DIR``, default this one, so the code before a change
can be measured the same way), runs the attack from this process, and
reports the figure the report measured, while a well-behaved client from
another source address (127.0.0.2) times a request every 50 ms throughout:
its p50/p99/max are the "what did everyone else notice" column.

Scenarios (each a few seconds):

  chat_stall    chat --msg-rate 10 --ip-msg-rate 10, 20 reading members; one
                write of 32,000 lines. Figure: the attacker's lines one member
                got within 5 s (bound: 10 x 5 + burst 10), the probe's /help
                latency, and how long SIGTERM then takes (grace 2 s).
  sigterm_stall the same write with 100 members, then SIGTERM 0.5 s later.
                Figure: seconds until the server exits (grace 2 s).
  who_flood     chat --msg-rate 5, 200 members; one write of /who x 10,000.
                Figure: bytes sent back to the attacker within 5 s.
  churn         echo --ip-rate 10000 --idle-timeout 5; connect, send 64 KB,
                read for 20 ms, close, for 10 s. Figures: bytes/s echoed
                (limit 10,000) and the server's open fds 1.5 s after the end.
  partial       echo --framing line; 300 connections each hold a 1 MiB - 1
                partial line. Figure: the server's RSS growth.
  udp_loop      echo --udp; one datagram spoofed from the server's own
                address and port (needs root for a raw socket; skipped
                otherwise). Figure: server CPU over the next 3 s.
"""

import os
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

from .common import print_table, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    """``python -m reactor ARGS`` from ``tree``, on a free port; reads /proc for its costs."""

    def __init__(self, tree, *args):
        self.process = subprocess.Popen([sys.executable, "-m", "reactor"] + list(args),
                                        cwd=tree, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        line = self.process.stderr.readline()
        match = re.search(r"listening on \S+:(\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError("server did not start: %r" % line)
        self.port = int(match.group(1))
        threading.Thread(target=self._drain_log, daemon=True).start()

    def _drain_log(self):
        for _ in self.process.stderr:
            pass

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.process.pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.process.pid))

    def rss_bytes(self):
        with open("/proc/%d/status" % self.process.pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self, timeout=15):
        """SIGTERM; return the seconds until it exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - started


class Probe(threading.Thread):
    """A well-behaved client from 127.0.0.2: one request every 50 ms, latencies recorded."""

    def __init__(self, port, request, answered, hello=b"", interval=0.05):
        super().__init__(daemon=True)
        self.interval = interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(60)
        if hello:
            self.sock.sendall(hello)
            time.sleep(0.2)
            self._read_until(lambda data: True)
        self.request, self.answered = request, answered
        self.latencies = []
        self.running = True

    def _read_until(self, done):
        data = b""
        while not done(data):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("probe connection closed")
            data += chunk
        return data

    def run(self):
        try:
            while self.running:
                started = time.monotonic()
                self.sock.sendall(self.request)
                self._read_until(self.answered)
                self.latencies.append(time.monotonic() - started)
                time.sleep(self.interval)
        except OSError:
            self.latencies.append(float("inf"))

    def finish(self):
        self.running = False
        self.join(70)
        self.sock.close()
        times = sorted(self.latencies) or [float("inf")]
        return {"p50_ms": 1000 * statistics.median(times),
                "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
                "max_ms": 1000 * times[-1], "probes": len(times)}


def member(port, nick, source="127.0.0.1"):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(nick.encode() + b"\n")
    return sock


def drain(socks, seconds, count_pattern=None):
    """Read every socket for ``seconds``; return bytes read and the count of ``count_pattern``."""
    for sock in socks:
        sock.setblocking(False)
    total, matched, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select(socks, [], [], 0.05)
        for sock in readable:
            try:
                data = sock.recv(1 << 20)
            except OSError:
                continue
            total += len(data)
            if count_pattern:
                matched += data.count(count_pattern)
    return total, matched


def chat_stall(tree):
    server = Server(tree, "chat", "--port", "0", "--msg-rate", "10", "--ip-msg-rate", "10")
    members = [member(server.port, "m%d" % i) for i in range(20)]
    time.sleep(0.5)
    drain(members, 0.3)
    probe = Probe(server.port, b"/help\n", lambda data: b"\n" in data and b"/join" in data,
                  hello=b"probe\n", interval=0.25)      # 4/s: under the probe's own 10/s
    probe.start()
    attacker = member(server.port, "mallory", "127.0.0.3")
    time.sleep(0.3)
    attacker.sendall(b"a\n" * 32000)
    _, got = drain(members[:1], 5.0, b"mallory: a")
    probed = probe.finish()
    exit_seconds = server.stop()
    disconnected = _closed(attacker)
    for sock in members + [attacker]:
        sock.close()
    return dict(probed, attacker_lines_one_member_got_in_5s=got, bound=10 * 5 + 10,
                attacker_disconnected=disconnected, sigterm_exit_seconds=exit_seconds)


def sigterm_stall(tree):
    server = Server(tree, "chat", "--port", "0", "--msg-rate", "10", "--ip-msg-rate", "10")
    members = [member(server.port, "m%d" % i) for i in range(100)]
    time.sleep(1.0)
    drain(members, 0.5)
    reader = threading.Thread(target=drain, args=(members, 70.0), daemon=True)
    reader.start()
    attacker = member(server.port, "mallory", "127.0.0.3")
    time.sleep(0.3)
    attacker.sendall(b"a\n" * 32000)
    time.sleep(0.5)
    exit_seconds = server.stop(timeout=60)
    for sock in members + [attacker]:
        sock.close()
    return {"sigterm_exit_seconds": exit_seconds, "grace_seconds": 2}


def who_flood(tree):
    server = Server(tree, "chat", "--port", "0", "--msg-rate", "5")
    members = [member(server.port, "m%d" % i) for i in range(200)]
    time.sleep(1.0)
    drain(members, 0.5)
    probe = Probe(server.port, b"/help\n", lambda data: b"\n" in data and b"/join" in data,
                  hello=b"probe\n", interval=0.25)      # 4/s: under the probe's own 5/s
    probe.start()
    attacker = member(server.port, "mallory", "127.0.0.3")
    time.sleep(0.3)
    drain([attacker], 0.2)
    attacker.setblocking(True)
    attacker.sendall(b"/who\n" * 10000)
    sent_back, _ = drain([attacker], 5.0)
    probed = probe.finish()
    disconnected = _closed(attacker)
    server.stop()
    for sock in members + [attacker]:
        sock.close()
    return dict(probed, bytes_back_in_5s=sent_back, bytes_in=5 * 10000,
                attacker_disconnected=disconnected)


def churn(tree):
    server = Server(tree, "echo", "--port", "0", "--ip-rate", "10000", "--idle-timeout", "5")
    baseline = server.fds()
    probe = Probe(server.port, b"ping", lambda data: len(data) >= 4)
    probe.start()
    echoed, started = 0, time.monotonic()
    while time.monotonic() - started < 10:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"z" * 65536)
        got, _ = drain([sock], 0.02)
        echoed += got
        sock.close()
    elapsed = time.monotonic() - started
    time.sleep(1.5)
    fds_after = server.fds() - baseline
    probed = probe.finish()
    server.stop()
    return dict(probed, echoed_bytes_per_second=echoed / elapsed, limit=10000,
                extra_fds_1_5s_after=fds_after - 1)       # the probe's own connection


def partial(tree):
    server = Server(tree, "echo", "--port", "0", "--framing", "line")
    probe = Probe(server.port, b"ping\n", lambda data: data.endswith(b"\n"))
    probe.start()
    before = server.rss_bytes()
    socks = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", server.port))
        try:
            sock.sendall(b"x" * (1024 * 1024 - 1))
        except OSError:
            pass
        socks.append(sock)
    time.sleep(2.0)
    grown = server.rss_bytes() - before
    still_open = sum(1 for sock in socks if not _closed(sock))
    probed = probe.finish()
    for sock in socks:
        sock.close()
    server.stop()
    return dict(probed, rss_growth_mib=grown / 2 ** 20, holders_still_open=still_open)


def _closed(sock):
    """Tell whether the server closed ``sock`` (reading whatever was still pending first)."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(1 << 20):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def udp_loop(tree):
    if os.geteuid() != 0:
        return {"skipped": "needs root for a raw socket"}
    server = subprocess.Popen([sys.executable, "-m", "reactor", "echo", "--udp", "--port", "0"],
                              cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    match = re.search(r"listening on \S+:(\d+)", server.stderr.readline())
    port = int(match.group(1))
    payload = b"loop"
    udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.sendto(ip + udp, ("127.0.0.1", 0))
    raw.close()

    def cpu():
        with open("/proc/%d/stat" % server.pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    time.sleep(0.2)
    before = cpu()
    time.sleep(3.0)
    used = cpu() - before
    server.send_signal(signal.SIGTERM)
    server.wait(10)
    return {"server_cpu_percent_over_3s": 100 * used / 3.0}


SCENARIOS = {"chat_stall": chat_stall, "sigterm_stall": sigterm_stall, "who_flood": who_flood,
             "churn": churn,
             "partial": partial, "udp_loop": udp_loop}


def main(args, extra):
    tree = ROOT
    if "--tree" in extra:
        tree = os.path.abspath(extra[extra.index("--tree") + 1])
    chosen = [name for name in SCENARIOS if name in extra] or list(SCENARIOS)
    print("attacks suite against %s (%s)" % (tree, ", ".join(chosen)), flush=True)
    results, rows = [], []
    for name in chosen:
        try:
            result = SCENARIOS[name](tree)
        except Exception as exc:            # a scenario that cannot run says why, the rest go on
            result = {"error": "%s: %s" % (type(exc).__name__, exc)}
        results.append(dict(result, scenario=name, tree=tree))
        figures = ", ".join("%s=%s" % (key, ("%.1f" % value) if isinstance(value, float)
                                       else value) for key, value in result.items())
        print("  %-11s %s" % (name, figures), flush=True)
        rows.append([name, figures])
    print_table("Attacks (probe: a request every 50 ms from 127.0.0.2 during each)",
                ["scenario", "figures"], rows)
    if args.json:
        write_json(args.json, "attacks", results)
    return 0

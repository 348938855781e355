"""``python -m benchmarks echo --protected``: what the protections cost, and a slowloris.

Anchor pattern: the same TCP echo as the echo suite, served twice in one
run, round-robin: ``reactor`` (no protections) and ``reactor-protected``
(token auth done when the connection opened, idle timeout, per-IP cap,
byte and message rates per connection and per address, all far above the
load, so they cost their bookkeeping but never bind). The ratio of the two
is the price of a guarded connection.

Then the slowloris measurement: 2,000 authenticated connections each send
a partial request and go silent. We record how much resident memory the
server grows by (``VmRSS`` from /proc, so the whole process, not just the
Python heap), and, for each connection, how long after its last byte the
server closed it, against the idle timeout.
"""

import os
import selectors
import socket
import statistics
import time

from .common import print_table, write_json
from .harness import build_loadgen, free_port, one_run, prime, start_server, stop_server
from .models import BENCH_TOKEN, models_for

SCENARIOS = [(100, 64, 1), (1000, 64, 1)]
#: the plain reactor echo, then the guarded ones (benchmarks/models/)
PROTECTED_MODELS = ["reactor"] + models_for("echo-protected")
SLOWLORIS_CONNECTIONS = 2000
SLOWLORIS_IDLE_SECONDS = 2.0
PARTIAL_REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-a: "


def rss_bytes(pid):
    """Resident set size of a process, from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for %d" % pid)


def slowloris(count, idle_seconds):
    """Open ``count`` silent connections; return RSS growth and close lateness figures."""
    port = free_port()
    server = start_server("reactor-protected", port, "--idle-timeout", str(idle_seconds))
    sockets = []
    try:
        prime(port, BENCH_TOKEN + b"\n")
        time.sleep(0.2)
        rss_before = rss_bytes(server.pid)
        last_activity = {}
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(BENCH_TOKEN + b"\n" + PARTIAL_REQUEST)
            sockets.append(sock)
            received = b""
            while len(received) < len(PARTIAL_REQUEST):    # the echo: the server's last
                received += sock.recv(4096)                 # activity on this connection
            last_activity[sock] = time.monotonic()
        rss_during = rss_bytes(server.pid)
        selector = selectors.DefaultSelector()
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        closed_after = []
        deadline = time.monotonic() + idle_seconds + 30
        while len(closed_after) < count and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                now = time.monotonic()
                try:
                    data = key.fileobj.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    closed_after.append(now - last_activity[key.fileobj])
        selector.close()
        rss_after = rss_bytes(server.pid)
    finally:
        for sock in sockets:
            sock.close()
        stop_server(server)
    lateness_ms = sorted((seconds - idle_seconds) * 1000 for seconds in closed_after)
    return {"connections": count, "closed": len(closed_after), "idle_seconds": idle_seconds,
            "rss_growth_bytes": rss_during - rss_before,
            "rss_after_close_bytes": rss_after - rss_before,
            "earliest_ms": lateness_ms[0] if lateness_ms else None,
            "median_late_ms": statistics.median(lateness_ms) if lateness_ms else None,
            "max_late_ms": lateness_ms[-1] if lateness_ms else None}


def main(args, extra):
    if not os.path.exists("/proc/self/stat"):
        print("this suite reads server CPU and memory from /proc; this platform has none")
        return 1
    quick = args.quick
    repeat = args.repeat or (3 if quick else 5)
    warmup, duration = (0.5, 2.0) if quick else (1.0, 4.0)
    loadgen = build_loadgen()
    print("protected echo: %d run(s) per cell (median), %.0f s each after %.1f s warm-up; "
          "load generator: %s" % (repeat, duration, warmup,
                                  "loadgen.c" if loadgen else "Python stand-in"), flush=True)
    results = []
    for scenario in SCENARIOS:
        conns, size, _ = scenario
        runs = {model: [] for model in PROTECTED_MODELS}
        for _ in range(repeat):
            for model in PROTECTED_MODELS:
                preamble = BENCH_TOKEN if model == "reactor-protected" else b""
                runs[model].append(one_run(model, scenario, loadgen, warmup, duration,
                                           preamble=preamble))
        cells = {model: {key: statistics.median(run[key] for run in runs[model])
                         for key in runs[model][0]} for model in PROTECTED_MODELS}
        base = cells["reactor"]
        # Runs alternate between the models, so run i of each saw the same
        # machine; the median of these paired ratios resists slow drift.
        paired = statistics.median(
            protected["requests_per_second"] / plain["requests_per_second"]
            for plain, protected in zip(runs["reactor"], runs["reactor-protected"]))
        rows = []
        for model in PROTECTED_MODELS:
            cell = cells[model]
            results.append(dict(cell, scenario="%d x %d B" % (conns, size), model=model,
                                runs=runs[model], paired_ratio_median=paired))
            rows.append([model, "%.0f" % cell["requests_per_second"],
                         "%.3fx" % (cell["requests_per_second"] / base["requests_per_second"]),
                         "%.1f" % cell["server_cpu_us_per_request"],
                         "%.3fx" % (cell["server_cpu_us_per_request"]
                                    / base["server_cpu_us_per_request"]),
                         "%.0f" % cell["p99_us"], "%.0f%%" % (100 * cell["loadgen_busy"]),
                         "%d" % cell["errors"]])
        print_table("echo %d conn x %d B ping-pong, protections on vs off" % (conns, size),
                    ["model", "req/s", "vs unprotected", "server us/req", "cpu vs unprotected",
                     "p99 us", "loadgen busy", "errors"], rows,
                    ["median of the %d paired (same-round) req/s ratios: %.3fx" % (repeat, paired),
                     "target: protected >= 0.9x unprotected req/s at 100 x 64 B"])
    figures = slowloris(SLOWLORIS_CONNECTIONS, SLOWLORIS_IDLE_SECONDS)
    results.append(dict(figures, scenario="slowloris", model="reactor-protected"))
    print_table("slowloris: %d connections send a partial request, then nothing "
                "(idle timeout %.1f s)" % (SLOWLORIS_CONNECTIONS, SLOWLORIS_IDLE_SECONDS),
                ["server RSS growth", "per connection", "closed", "closed after idle + (ms): "
                 "min / median / max"],
                [["%.2f MiB" % (figures["rss_growth_bytes"] / 2 ** 20),
                  "%.0f B" % (figures["rss_growth_bytes"] / SLOWLORIS_CONNECTIONS),
                  "%d / %d" % (figures["closed"], SLOWLORIS_CONNECTIONS),
                  "%.1f / %.1f / %.1f" % (figures["earliest_ms"], figures["median_late_ms"],
                                          figures["max_late_ms"])]],
                ["targets: <= 8 MiB RSS; every connection gone within the idle timeout + 1 tick "
                 "(1 ms); lateness includes this client noticing the close"])
    if args.json:
        write_json(args.json, "echo-protected", results)
    return 0

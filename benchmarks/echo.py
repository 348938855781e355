"""Echo suite: reactor against other concurrency models, each server in its own process.

Anchor pattern: the TCP echo server, the smallest request/response server
(select -> recv -> send), at 1, 100 and 1,000 connections, 64 B and 4 KiB
messages, ping-pong and pipelined (16 messages in flight per connection).

For every run a fresh server process is started, primed (one connection
opened, used and closed, then the load generator's warm-up), and measured: requests/s and p50/p99 latency from
the load generator; the server's CPU time per request from /proc, which
stays meaningful when the load generator, not the server, is the
bottleneck. On a 2-core machine both usually are: the table says how busy
the generator was. A model whose package is missing is listed as skipped.

The load generator is ``loadgen.c`` (epoll, C), compiled on first use with
the system C compiler; without one, a Python stand-in runs and the table
says so.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

from .common import compile_tool, print_table, write_json
from .servers import MODELS, available

HERE = os.path.dirname(os.path.abspath(__file__))
FULL_SCENARIOS = [(1, 64, 1), (100, 64, 1), (1000, 64, 1), (1, 4096, 1), (100, 4096, 1),
                  (1000, 4096, 1), (100, 64, 16)]
QUICK_SCENARIOS = [(100, 64, 1), (1000, 64, 1), (100, 64, 16)]


def build_loadgen():
    """Compile loadgen.c once; return its path, or None without a C compiler."""
    return compile_tool(os.path.join(HERE, "loadgen.c"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model, port, *extra):
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.servers", model, str(port)]
                               + list(extra), cwd=os.path.dirname(HERE),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if line != "ready":
        process.kill()
        raise RuntimeError("%s server did not start: %r %s" % (model, line, process.stderr.read()))
    return process


def prime(port, preamble=b""):
    """Open, use and close one connection before measuring.

    A fresh CPython server whose reads allocate large buffers (asyncio reads
    256 KiB at a time) pays glibc mmap/munmap on every read until a first
    connection closes and glibc raises its mmap threshold; a real server is
    long past that point, so every model is primed the same way.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(preamble + b"prime" * 13000)
        received = 0
        while received < 5 * 13000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
    time.sleep(0.05)


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def measure(model, command, warmup, duration, before=None, env=None):
    """Run ``command`` (a load generator printing JSON) against a fresh ``model`` server.

    ``before(port)`` primes the server first. The server's CPU time is read
    from /proc across the measured window (after the warm-up). Returns the
    load generator's JSON and the server CPU seconds spent in the window;
    the command's "{port}" is replaced by the server's port.
    """
    port = free_port()
    server = start_server(model, port)
    try:
        if before is not None:
            before(port)
        client = subprocess.Popen([part.replace("{port}", str(port)) for part in command],
                                  stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(warmup)
        cpu_before = process_cpu_seconds(server.pid)
        output, _ = client.communicate(timeout=warmup + duration + 60)
        cpu_after = process_cpu_seconds(server.pid)
    finally:
        stop_server(server)
    return json.loads(output), cpu_after - cpu_before


def one_run(model, scenario, loadgen, warmup, duration, framing="raw", preamble=b""):
    """Measure one scenario on a fresh server; ``preamble`` (a token line) opens each connection."""
    conns, size, pipeline = scenario
    command = ([loadgen] if loadgen else [sys.executable, os.path.join(HERE, "pyloadgen.py")])
    command += ["127.0.0.1", "{port}", str(conns), str(size), str(pipeline),
                str(warmup), str(duration), framing]
    if framing == "raw":
        before = lambda port: prime(port, preamble + b"\n" if preamble else b"")  # noqa: E731
    else:
        before = lambda port: time.sleep(0.05)                                  # noqa: E731
    env = dict(os.environ, LOADGEN_PREAMBLE=preamble.decode()) if preamble else None
    result, cpu_seconds = measure(model, command, warmup, duration, before, env)
    requests = max(result["requests"], 1)
    return {
        "requests_per_second": result["requests"] / result["seconds"],
        "p50_us": result["p50_us"], "p99_us": result["p99_us"],
        "server_cpu_us_per_request": cpu_seconds * 1e6 / requests,
        "loadgen_busy": result["cpu_seconds"] / result["seconds"],
        "errors": result["errors"],
        "lost": result.get("lost", 0),
    }


def idle_memory(model, count):
    """Python heap the server grows by per idle connection (tracemalloc), or None."""
    port = free_port()
    server = start_server(model, port, "--measure-idle")
    clients = []
    try:
        for _ in range(count):
            clients.append(socket.create_connection(("127.0.0.1", port)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            server.send_signal(signal.SIGUSR1)
            _, grown, seen = server.stdout.readline().split()
            if int(seen) >= count:
                return int(grown) / int(seen)
            time.sleep(0.2)
        return None
    finally:
        for sock in clients:
            sock.close()
        stop_server(server)


def main(args, extra):
    if "--protected" in extra:
        from .protected import main as protected_main
        return protected_main(args, extra)
    if not os.path.exists("/proc/self/stat"):
        print("the echo suite reads server CPU time from /proc; this platform has none")
        return 1
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    warmup, duration = (0.5, 2.0) if quick else (1.0, 4.0)
    scenarios = QUICK_SCENARIOS if quick else FULL_SCENARIOS
    loadgen = build_loadgen()
    print("echo suite: %d run(s) per cell (median), %.0f s each after %.1f s warm-up; "
          "load generator: %s" % (repeat, duration, warmup,
                                  "loadgen.c (epoll, C)" if loadgen else
                                  "Python stand-in (no C compiler: expect it to saturate)"),
          flush=True)
    models = [m for m in MODELS if available(m) is None]
    skipped = ["%s (%s)" % (m, available(m)) for m in MODELS if available(m) is not None]
    results = []
    for scenario in scenarios:
        conns, size, pipeline = scenario
        label = "%d conn x %d B%s" % (conns, size, ", %d in flight" % pipeline
                                      if pipeline > 1 else " ping-pong")
        # Round-robin over models within each repeat, so slow drift of the
        # machine (thermal, neighbours) spreads over every model alike.
        runs = {model: [] for model in models}
        for _ in range(repeat):
            for model in models:
                runs[model].append(one_run(model, scenario, loadgen, warmup, duration))
        cells = {}
        for model in models:
            cell = {key: statistics.median(run[key] for run in runs[model])
                    for key in runs[model][0]}
            cells[model] = cell
            results.append(dict(cell, scenario=label, model=model, runs=runs[model]))
            print("  %-32s %-18s %9.0f req/s" % (label, model, cell["requests_per_second"]),
                  flush=True)
        base = cells.get("asyncio-protocol")
        floor = cells.get("selectors-minimal")
        rows = []
        for model in models:
            cell = cells[model]
            rows.append([
                model, "%.0f" % cell["requests_per_second"],
                "%.2fx" % (cell["requests_per_second"] / floor["requests_per_second"]),
                "%.2fx" % (cell["requests_per_second"] / base["requests_per_second"]),
                "%.0f" % cell["p50_us"], "%.0f" % cell["p99_us"],
                "%.1f" % cell["server_cpu_us_per_request"],
                "%.2fx" % (cell["server_cpu_us_per_request"] / base["server_cpu_us_per_request"]),
                "%.0f%%" % (100 * cell["loadgen_busy"]),
            ])
        print_table(label, ["model", "req/s", "vs floor", "vs asyncio", "p50 us", "p99 us",
                            "server us/req", "cpu vs asyncio", "loadgen busy"], rows,
                    ["floor = selectors-minimal; loadgen busy >= 90% means the load generator, "
                     "not the server, set the rate"])
    count = 2000 if quick else 10000
    memory_rows = []
    for model in ("reactor", "asyncio-protocol"):
        per_connection = idle_memory(model, count)
        results.append({"scenario": "idle memory", "model": model, "connections": count,
                        "bytes_per_connection": per_connection})
        memory_rows.append([model, "n/a" if per_connection is None
                            else "%.0f B" % per_connection])
    print_table("Python heap per idle connection (tracemalloc, %d connections)" % count,
                ["model", "bytes / connection"], memory_rows,
                ["target: reactor <= 3 KiB (3072 B)"])
    if skipped:
        print("\nskipped: " + ", ".join(skipped))
    if args.json:
        write_json(args.json, "echo", results)
    return 0

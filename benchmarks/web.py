"""HTTP suite: reactor's HTTP/1.1 server against asyncio, http.server, aiohttp and uvicorn.

Anchor pattern: the keep-alive HTTP/1.1 request/response server. 100
keep-alive connections, one request in flight on each, ask every model for
``GET /`` ("Hello, world!" from a handler) and, where the model serves
files, for ``GET /hello.txt`` (a 13-byte static file). The models are in
``models/http.py``: reactor; the floor (an asyncio Protocol writing a
fixed reply per request, parsing nothing); the standard library's
ThreadingHTTPServer; aiohttp with its C parser and with
AIOHTTP_NO_EXTENSIONS=1; uvicorn with uvloop + httptools and with asyncio +
h11. A third-party model that is not installed is reported as skipped; a
model whose server does not start, or answers wrongly, as failed.

Load: ``wrk -t 1 -c 100 --latency`` when wrk is installed (a warm-up run,
then the measured run), else ``httploadgen.c`` (epoll, C, compiled on first
use) with the same 100 connections; ``--loadgen c`` forces it. The server
is pinned to core 0 and the load generator to core 1 (taskset) when there
are two cores. Per run: requests/s and p50/p99 from the load generator, and
the server's CPU time per request (utime + stime of all its threads, from
/proc) over the measured window, which stays meaningful when the load
generator, not the server, is the bottleneck ("loadgen busy" near 100%:
its CPU seconds per second). Each model is run ``--repeat`` times
(default 3, ``--quick`` 1), round-robin, in fresh processes; the table
shows medians, and ratios are medians of each round's own ratio.

aiohttp's hello is one asyncio program run on each event loop at hand:
asyncio's (``aiohttp``), uvloop (``aiohttp-uvloop``) and reactor.aio
(``aiohttp-reactor-aio``); a table after the scenario tables puts them side
by side, each loop's figures over asyncio's own loop's (``programs.py``).
``--models A,B`` runs only those models.

Last, reactor's Python heap per idle keep-alive connection (tracemalloc in
the server, after each connection has had one response), beside the floor
and aiohttp, as the echo suite measures idle connections.

``--workers 1,2`` runs reactor's own HTTP server (``--root``, a 13-byte
file) as one process, then under a supervisor with 1 and 2 workers
(``workers.py``).
"""

import http.client
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile

from .common import print_table, unknown_models
from .harness import (
    StartFailed, build_loadgen, heap_target, idle_heap_table, medians_or_why, paired, pinned,
    print_targets, process_cpu_seconds, ratio_targets, read_until, round_robin, run_held,
    scenario_results, serving)
from .models import available, models_for, programs_for
from .models.http import BODY
from .programs import program_table, tag_rows

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONNECTIONS = 100
#: scenario label -> path requested (static scenarios run with --root)
SCENARIOS = [("hello", "/"), ("static 13 B", "/hello.txt")]
#: the HTTP servers (benchmarks/models/http.py); those that can report their idle heap
MODELS = models_for("http")
IDLE_MODELS = models_for("http", idle=True)
WRK_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}


def check(port, path):
    """Two GETs on one connection: each must be 200 with the 13-byte body (and keep-alive)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or body != BODY:
                raise RuntimeError("GET %s answered %d %r" % (path, response.status, body[:60]))
    finally:
        conn.close()


def parse_wrk(text):
    """requests, seconds, p50/p75/p90/p99 in µs and errors from ``wrk --latency`` output."""
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    if not found:
        raise RuntimeError("unexpected wrk output: %r" % text[-300:])
    result = {"requests": int(found.group(1)),
              "seconds": float(found.group(2)) * WRK_UNITS[found.group(3)] / 1e6, "errors": 0}
    for percent, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$",
                                           text, re.M):
        result["p%s_us" % percent] = float(value) * WRK_UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", text)
    result["errors"] += int(bad.group(1)) if bad else 0
    result["errors"] += sum(map(int, socket_errors.groups())) if socket_errors else 0
    return result


def run_wrk(server, port, path, warmup, duration, server_cpu=None, core=1):
    """A wrk warm-up run, then the measured one; return wrk's figures (with its own CPU
    seconds, from this process's RUSAGE_CHILDREN) and the server's CPU seconds.

    ``server_cpu()`` reads the server's CPU seconds (default: ``server``'s own, from
    /proc); wrk runs on ``core`` (None: unpinned)."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    wrk = ["wrk", "-t", "1", "-c", str(CONNECTIONS)]
    server_cpu = server_cpu or (lambda: process_cpu_seconds(server.pid))
    place = (lambda command: command) if core is None else (lambda command: pinned(core, command))
    subprocess.run(place(wrk + ["-d", "%ds" % warmup, url]), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=warmup + 60)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = server_cpu()
    done = subprocess.run(place(wrk + ["--latency", "-d", "%ds" % duration, url]),
                          capture_output=True, text=True, timeout=duration + 60)
    cpu_after = server_cpu()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = parse_wrk(done.stdout)
    result["cpu_seconds"] = (after.ru_utime + after.ru_stime
                             - children.ru_utime - children.ru_stime)
    return result, cpu_after - cpu_before


def run_loadgen(binary, server, port, path, warmup, duration, server_cpu=None, core=1):
    """httploadgen.c with LOADGEN_HOLD: server CPU is read at its "measuring" and JSON lines
    (``server_cpu()``, default ``server``'s own; on ``core``, None: unpinned)."""
    command = [binary, "127.0.0.1", str(port), str(CONNECTIONS), path, str(warmup),
               str(duration)]
    return run_held(command if core is None else pinned(core, command),
                    server_cpu or (lambda: process_cpu_seconds(server.pid)), "httploadgen")


def one_run(model, path, root, loadgen, warmup, duration):
    """Measure ``model`` serving ``path`` on a fresh server; return the run's figures."""
    with serving(model, root if path != "/" else None) as (server, port):
        check(port, path)
        if loadgen == "wrk":
            result, cpu = run_wrk(server, port, path, warmup, duration)
        else:
            result, cpu = run_loadgen(loadgen, server, port, path, warmup, duration)
    if result["requests"] == 0:
        raise RuntimeError("no response in the measured window (%d errors)" % result["errors"])
    latency = {key: value for key, value in result.items() if re.match(r"p\d+_us$", key)}
    return dict(latency, requests=result["requests"],
                requests_per_second=result["requests"] / result["seconds"],
                server_cpu_us_per_request=cpu * 1e6 / result["requests"],
                loadgen_busy=result["cpu_seconds"] / result["seconds"], errors=result["errors"])


def scenario_table(label, models, runs, status):
    """Print one scenario's table; return the medians of each model that ran."""
    rows, medians, notes = [], {}, []
    for model in models:
        cell, why = medians_or_why(runs, status, (label, model), notes)
        if cell is None:
            rows.append([model, why, "", "", "", "", ""])
            continue
        medians[model] = cell
        ratio = paired(runs.get((label, "reactor"), ()), runs[label, model])
        rows.append([model, "%.0f" % cell["requests_per_second"],
                     "%.1f" % cell["server_cpu_us_per_request"],
                     "%.2f" % (cell.get("p50_us", 0) / 1e3),
                     "%.2f" % (cell.get("p99_us", 0) / 1e3),
                     "n/a" if ratio is None else "%.2fx" % ratio,
                     "%.0f%%" % (100 * cell["loadgen_busy"])])
    errors = ["%s %d" % (m, c["errors"]) for m, c in medians.items() if c["errors"]]
    if errors:
        notes.append("errors (median per run): " + ", ".join(errors))
    print_table("%s: %d keep-alive connections, GET %s"
                % (label, CONNECTIONS, dict(SCENARIOS)[label]),
                ["model", "req/s", "server us/req", "p50 ms", "p99 ms", "reactor / model",
                 "loadgen busy"], rows,
                ["reactor / model: median of each round's ratio of req/s (> 1: reactor faster)",
                 "loadgen busy >= 90%: the load generator, not the server, set the rate"] + notes)
    return medians


def keepalive_batch(port, size, clients):
    """Open ``size`` keep-alive connections (added to ``clients``), each having had one
    response."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    batch = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(size)]
    clients += batch
    for sock in batch:
        sock.sendall(request)
    for sock in batch:
        read_until(sock, BODY)


def main(args, extra):
    if not os.path.exists("/proc/self/stat"):
        print("the http suite reads server CPU time from /proc; this platform has none")
        return 1
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    warmup, duration = (1, 2) if quick else (2, 5)
    idle_count = 1000 if quick else 10000
    forced = extra[extra.index("--loadgen") + 1] if "--loadgen" in extra[:-1] else None
    wanted = extra[extra.index("--models") + 1].split(",") if "--models" in extra[:-1] \
        else MODELS
    if forced not in (None, "wrk", "c") or "--models" in extra[-1:]:
        print("usage: python -m benchmarks http [--quick] [--repeat R] [--loadgen wrk|c] "
              "[--models A,B]")
        return 2
    problem = unknown_models("http", wanted, MODELS)
    if problem:
        print(problem)
        return 2
    loadgen = "wrk" if shutil.which("wrk") and forced != "c" else None
    if loadgen is None:
        loadgen = build_loadgen("httploadgen")
        if loadgen is None:
            print("http suite: neither wrk nor a C compiler for httploadgen.c is installed")
            return 1
    print("http suite: %d keep-alive connections, load from %s on core 1, servers on core 0; "
          "%d round(s) (median), %d s each after a %d s warm-up"
          % (CONNECTIONS, "wrk -t 1" if loadgen == "wrk" else "httploadgen.c", repeat,
             duration, warmup), flush=True)
    models = [m for m in wanted if available(m) is None]
    status = {}
    for label, path in SCENARIOS:
        protocol = "http" if path == "/" else "http-static"
        for model in wanted:
            if available(model):
                status[label, model] = "skipped: " + available(model)
            elif available(model, protocol):
                status[label, model] = "n/a: " + available(model, protocol)
    runs = {(label, m): [] for label, _ in SCENARIOS for m in models if (label, m) not in status}
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "hello.txt"), "wb") as handle:
            handle.write(BODY)

        def measure(label, model):
            run = one_run(model, dict(SCENARIOS)[label], root, loadgen, warmup, duration)
            return run, "%9.0f req/s  %6.1f us/req" % (run["requests_per_second"],
                                                        run["server_cpu_us_per_request"])
        round_robin(runs, status, repeat, measure, StartFailed)
    results = []
    for label, _ in SCENARIOS:
        medians = scenario_table(label, wanted, runs, status)
        results += scenario_results(label, wanted, medians, runs, status)
    hello_only = [SCENARIOS[0][0]]          # the loop comparison is aiohttp's hello
    programs = [(program, members) for program, members in programs_for("http")
                if any(model in wanted for _, model in members)]
    program_table(programs, hello_only, runs, status, available)
    tag_rows(results, programs, hello_only)
    heap = idle_heap_table("keep-alive connection", [m for m in IDLE_MODELS if m in models],
                           idle_count, results, open_batch=keepalive_batch,
                           protocol="http",
                           check_server=lambda port: check(port, "/"))
    hello, static = SCENARIOS[0][0], SCENARIOS[1][0]
    targets = [  # (what, reactor's scenario, the other (scenario, model), ratio)
        ("hello >= 1.0x uvicorn-httptools", hello, (hello, "uvicorn-httptools"), 1.0),
        ("hello >= 1.5x aiohttp-pure", hello, (hello, "aiohttp-pure"), 1.5),
        ("static >= 0.5x reactor's own hello", static, (hello, "reactor"), 0.5),
        ("static >= 3x aiohttp add_static (C parser)", static, (static, "aiohttp"), 3.0),
        ("hello >= 10x http.server", hello, (hello, "http.server"), 10.0),
        ("static >= 10x http.server", static, (static, "http.server"), 10.0),
    ]
    rows = ratio_targets(targets, runs, results)
    heap_target(heap.get("reactor"), "keep-alive connection", rows, results)
    return print_targets("Targets (reactor; ratios of req/s, median of each round's own ratio)",
                         rows, results, args.json, "http")

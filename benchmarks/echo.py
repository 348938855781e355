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

``--connections N`` runs the scale check instead: N connections against
1,000 (reactor, the floor, asyncio and uvloop), then memory per connection
at N idle. The server and the load generator each hold N fds: the suite
raises its soft limit to N + 100 when the hard limit allows, and otherwise
says which limit it needs.

``--workers 1,2`` runs reactor's own echo server as one process, then under
a supervisor with 1 and 2 workers (``workers.py``).

Two of the models are asyncio programs run on each event loop at hand:
the Protocol echo (asyncio-protocol, reactor-aio-protocol, uvloop) and the
streams echo (asyncio-streams, reactor-aio-streams, uvloop-streams). After
the scenario tables, one more puts each program's loops side by side
(``programs.py``), every loop's figures over asyncio's own loop's.

``--models A,B`` runs only those models (a smoke run, or one comparison);
the idle-memory table needs reactor and asyncio-protocol among them.
"""

import os
import signal
import socket
import statistics
import time

from .common import print_table, unknown_models, write_json
from .harness import (
    build_loadgen, fd_limit_problem, free_port, medians_or_why, one_run, prime, round_robin,
    scenario_results, start_server, stop_server)
from .models import available, models_for, programs_for
from .models.baselines import POOL_THREADS
from .programs import program_table, tag_rows

HERE = os.path.dirname(os.path.abspath(__file__))
#: every model that speaks echo (benchmarks/models/), in registration order
MODELS = models_for("echo")
POOL_NOTES = ["threadpool serves %d connections at a time, prefork %d (2 x cores): the others "
              "wait, accepted but unanswered, so their req/s and latency are those few "
              "connections'" % (POOL_THREADS, 2 * (os.cpu_count() or 1))]
FULL_SCENARIOS = [(1, 64, 1), (100, 64, 1), (1000, 64, 1), (1, 4096, 1), (100, 4096, 1),
                  (1000, 4096, 1), (100, 64, 16)]
QUICK_SCENARIOS = [(100, 64, 1), (1000, 64, 1), (100, 64, 16)]


def idle_growth(model, count, flag):
    """Bytes per idle connection that ``model``'s server grows by: (Python heap, RSS).

    ``flag`` is ``--measure-idle`` (heap traced by tracemalloc) or
    ``--measure-rss`` (untraced: tracing swells the resident set). The
    server is primed, read once, given ``count`` idle connections from this
    process, and read again. Returns None if it never saw them all.
    """
    port = free_port()
    server = start_server(model, port, flag)
    clients = []

    def read_server():
        server.send_signal(signal.SIGUSR1)
        _, heap, resident, seen = server.stdout.readline().split()
        return int(heap), int(resident), int(seen)
    try:
        prime(port)
        heap0, resident0, _ = read_server()
        for _ in range(count):
            clients.append(socket.create_connection(("127.0.0.1", port)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            heap, resident, seen = read_server()
            if seen >= count:
                return (heap - heap0) / seen, (resident - resident0) / seen
            time.sleep(0.2)
        return None
    finally:
        for sock in clients:
            sock.close()
        stop_server(server)


def idle_memory_table(count, results):
    """Print heap and RSS per idle connection, reactor beside asyncio."""
    rows, rss = [], {}
    for model in ("reactor", "asyncio-protocol"):
        traced = idle_growth(model, count, "--measure-idle")
        untraced = idle_growth(model, count, "--measure-rss")
        heap = traced[0] if traced else None
        rss[model] = untraced[1] if untraced else None
        results.append({"scenario": "idle memory", "model": model, "connections": count,
                        "heap_bytes_per_connection": heap,
                        "rss_bytes_per_connection": rss[model]})
        rows.append([model, "n/a" if heap is None else "%.0f B" % heap,
                     "n/a" if rss[model] is None else "%.0f B" % rss[model]])
    if rss["reactor"] and rss["asyncio-protocol"]:
        rows[0].append("%.2fx" % (rss["reactor"] / rss["asyncio-protocol"]))
        rows[1].append("1.00x")
    print_table("Memory per idle connection (%s connections; heap by tracemalloc, RSS "
                "from /proc in an untraced run)" % "{:,}".format(count),
                ["model", "Python heap", "RSS growth", "RSS vs asyncio"][:len(rows[0])], rows,
                ["targets: reactor heap <= 3 KiB (3072 B); RSS growth <= 0.5x asyncio's"])


#: Models of the --connections scale run: the floor, the C loop and asyncio.
SCALE_MODELS = ["reactor", "selectors-minimal", "asyncio-protocol", "uvloop"]


def scale_main(args, connections):
    """``echo --connections N``: N connections against 1,000, and N idle."""
    if connections < 1:
        print("--connections needs a positive count, got %d" % connections)
        return 2
    problem = fd_limit_problem(connections)
    if problem:
        print(problem)
        return 2
    quick = args.quick
    repeat = args.repeat or (3 if quick else 5)
    warmup, duration = (1.0, 2.0) if quick else (2.0, 4.0)
    loadgen = build_loadgen()
    models = [m for m in SCALE_MODELS if available(m) is None]
    skipped = ["%s (%s)" % (m, available(m)) for m in SCALE_MODELS if available(m) is not None]
    scenarios = sorted({(1000, 64, 1), (connections, 64, 1)})
    print("echo scale: %s vs 1,000 connections x 64 B ping-pong, %d runs per cell "
          "(median, models and sizes alternating), %.0f s each after a %.0f s warm-up"
          % ("{:,}".format(connections), repeat, duration, warmup), flush=True)
    runs = {(model, scenario[0]): [] for model in models for scenario in scenarios}
    for _ in range(repeat):
        for scenario in scenarios:
            for model in models:
                run = one_run(model, scenario, loadgen, warmup, duration)
                runs[model, scenario[0]].append(run)
                print("  %6d conn  %-18s %9.0f req/s  %5.1f us/req"
                      % (scenario[0], model, run["requests_per_second"],
                         run["server_cpu_us_per_request"]), flush=True)
    results, rows = [], []
    for model in models:
        cell = {}
        for conns in (1000, connections):
            cell[conns] = {key: statistics.median(run[key] for run in runs[model, conns])
                           for key in runs[model, conns][0]}
            results.append(dict(cell[conns], scenario="%d conn x 64 B ping-pong" % conns,
                                model=model, runs=runs[model, conns]))
        small, big = cell[1000], cell[connections]

        def ratios(key):
            # Ratio of the medians, then the median of the per-repeat ratios
            # (both sizes ran minutes apart at most: the machine's drift cancels).
            pairs = zip(runs[model, connections], runs[model, 1000])
            return "%.2fx (%.2fx)" % (big[key] / small[key],
                                      statistics.median(b[key] / a[key] for b, a in pairs))
        rows.append([model, "%.0f" % small["requests_per_second"],
                     "%.0f" % big["requests_per_second"], ratios("requests_per_second"),
                     "%.1f" % small["server_cpu_us_per_request"],
                     "%.1f" % big["server_cpu_us_per_request"],
                     ratios("server_cpu_us_per_request"),
                     "%.0f" % big["p99_us"], "%d" % big["errors"],
                     "%.0f%%" % (100 * big["loadgen_busy"])])
    n = "{:,}".format(connections)
    print_table("Echo at %s connections against 1,000 (64 B ping-pong)" % n,
                ["model", "req/s 1k", "req/s " + n, "ratio (paired)", "us/req 1k",
                 "us/req " + n, "ratio (paired)", "p99 us " + n, "errors", "loadgen busy"], rows,
                ["targets (reactor): req/s at %s >= 0.85x its 1,000-connection rate; "
                 "server CPU per request <= 1.15x" % n,
                 "ratio = of the medians; paired = median of each repeat's own ratio"])
    idle_memory_table(connections, results)
    if skipped:
        print("\nskipped: " + ", ".join(skipped))
    if args.json:
        write_json(args.json, "echo-scale", results)
    return 0


def main(args, extra):
    if not os.path.exists("/proc/self/stat"):
        print("the echo suite reads server CPU time from /proc; this platform has none")
        return 1
    if "--connections" in extra:
        at = extra.index("--connections")
        try:
            connections = int(extra[at + 1])
        except (IndexError, ValueError):
            print("usage: python -m benchmarks echo --connections N [--quick] [--repeat R]")
            return 2
        return scale_main(args, connections)
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    warmup, duration = (0.5, 2.0) if quick else (1.0, 4.0)
    wanted = MODELS
    try:
        # `all --quick` measures each cell for less time, to stay near 3 minutes.
        if "--seconds" in extra:
            duration = float(extra[extra.index("--seconds") + 1])
        if "--models" in extra:
            wanted = extra[extra.index("--models") + 1].split(",")
    except (IndexError, ValueError):
        print("usage: python -m benchmarks echo [--quick] [--repeat R] [--seconds S] "
              "[--models A,B]")
        return 2
    problem = unknown_models("echo", wanted, MODELS)
    if problem:
        print(problem)
        return 2
    scenarios = QUICK_SCENARIOS if quick else FULL_SCENARIOS
    loadgen = build_loadgen()
    print("echo suite: %d run(s) per cell (median), %.0f s each after %.1f s warm-up; "
          "load generator: %s" % (repeat, duration, warmup,
                                  "loadgen.c (epoll, C)" if loadgen else
                                  "Python stand-in (no C compiler: expect it to saturate)"),
          flush=True)
    models = [m for m in wanted if available(m) is None]
    skipped = ["%s (%s)" % (m, available(m)) for m in wanted if available(m) is not None]
    results, runs, status, labels = [], {}, {}, []
    for scenario in scenarios:
        conns, size, pipeline = scenario
        label = "%d conn x %d B%s" % (conns, size, ", %d in flight" % pipeline
                                      if pipeline > 1 else " ping-pong")
        labels.append(label)
        # Round-robin over models within each repeat, so slow drift of the
        # machine (thermal, neighbours) spreads over every model alike. A
        # model that fails is reported in its row; the others still run.
        jobs = {(label, model): [] for model in models}

        def measure(label, model, scenario=scenario):
            run = one_run(model, scenario, loadgen, warmup, duration)
            return run, "%9.0f req/s  %5.1f us/req" % (run["requests_per_second"],
                                                        run["server_cpu_us_per_request"])
        round_robin(jobs, status, repeat, measure)
        runs.update(jobs)
        notes = []
        rows, medians = scenario_rows(label, models, runs, status, notes)
        results += scenario_results(label, models, medians, runs, status)
        print_table(label, ["model", "req/s", "vs floor", "vs asyncio", "p50 us", "p99 us",
                            "server us/req", "cpu vs asyncio", "loadgen busy"], rows,
                    ["floor = selectors-minimal; loadgen busy >= 90% means the load generator, "
                     "not the server, set the rate"] + POOL_NOTES + notes)
    programs = [(program, members) for program, members in programs_for("echo")
                if any(model in wanted for _, model in members)]
    program_table(programs, labels, runs, status, available)
    tag_rows(results, programs)
    count = 2000 if quick else 10000
    problem = fd_limit_problem(count)
    if not {"reactor", "asyncio-protocol"} <= set(models):
        print("\nidle memory skipped: it compares reactor and asyncio-protocol, and --models "
              "left one out")
    elif problem:
        print("\nidle memory skipped: " + problem)
    else:
        idle_memory_table(count, results)
    if skipped:
        print("\nskipped: " + ", ".join(skipped))
    if args.json:
        write_json(args.json, "echo", results)
    return 0


def scenario_rows(label, models, runs, status, notes):
    """One scenario's table rows and {model: its medians}: each model against the floor and
    asyncio (ratios of the medians; "n/a" where either did not run, why in ``notes``)."""
    cells = {model: medians_or_why(runs, status, (label, model), notes) for model in models}
    medians = {model: cell for model, (cell, _) in cells.items() if cell is not None}
    base, floor = medians.get("asyncio-protocol"), medians.get("selectors-minimal")

    def ratio(cell, other, key):
        return "n/a" if other is None else "%.2fx" % (cell[key] / other[key])
    rows = []
    for model in models:
        cell, why = cells[model]
        if cell is None:
            rows.append([model, why] + [""] * 7)
            continue
        rows.append([
            model, "%.0f" % cell["requests_per_second"],
            ratio(cell, floor, "requests_per_second"),
            ratio(cell, base, "requests_per_second"),
            "%.0f" % cell["p50_us"], "%.0f" % cell["p99_us"],
            "%.1f" % cell["server_cpu_us_per_request"],
            ratio(cell, base, "server_cpu_us_per_request"),
            "%.0f%%" % (100 * cell["loadgen_busy"]),
        ])
    return rows, medians

"""``echo --workers 1,2`` and ``http --workers 1,2``: one process against N worker processes.

Each model is reactor's own command line, so the only difference between
them is ``--workers``:

- ``1 process``: ``python -m reactor echo --port P`` (or ``http --root DIR``),
  one process, no supervisor: the reference;
- ``--workers N``: the same command with ``--workers N``: a supervisor that
  accepts nothing plus N forked workers, each with its own SO_REUSEPORT
  socket on the port.

Load is the suite's own, unpinned (pinning the server to one core would
defeat the workers): echo runs ``loadgen.c`` with 100 connections x 64 B
ping-pong (full size adds 1,000 connections and 16 messages in flight);
http runs ``wrk -t 1 -c 100`` when wrk is installed, else ``httploadgen.c``,
asking for a 13-byte static file (``GET /hello.txt``). Every model is run
``--repeat`` times (default 3, ``--quick`` 1), round-robin, each run on a
fresh server.

Server CPU is utime + stime from ``/proc/PID/stat`` of the supervisor AND
every worker, summed over the measured window (worker pids from the
supervisor's ``worker K started (pid P, ...)`` lines, checked against the
process tree). A worker that exits or restarts during a run fails that run.
The table gives requests/s, that CPU per request, both as ratios to the
single process (medians of each round's own ratio), the cores the server
used (its CPU seconds per second) and how busy the load generator was.

On a 2-core machine the load generator competes with the workers for the
cores: CPU per request is the figure to trust, and requests/s with two
workers is bounded by the cores the load generator leaves.
"""

import os
import re
import shutil
import sys
import tempfile

from .common import print_table, write_json
from .harness import (
    LOADGEN_DIR, SINGLE, ServerFailed, build_loadgen, cli_server, medians_or_why, model_name,
    paired, round_robin, run_held, scenario_results)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: (connections, message bytes, messages in flight per connection)
ECHO_QUICK = [(100, 64, 1)]
ECHO_FULL = [(100, 64, 1), (1000, 64, 1), (100, 64, 16)]
HTTP_CONNECTIONS = 100
HTTP_PATH = "/hello.txt"
CORES_NOTE = ("on a 2-core machine (this one has %s) the load generator competes with the "
              "workers for the cores: server CPU per request is the figure to trust, and "
              "req/s with 2 workers is bounded by the cores the load generator leaves")


def parse_workers(extra):
    """The counts of ``--workers 1,2`` (or ``--workers=1,2``) in ``extra``, None when the
    option is absent; raises ValueError when its value is not a list of positive counts."""
    for at, word in enumerate(extra):
        if word == "--workers":
            if at + 1 >= len(extra):
                raise ValueError("--workers needs a value, such as 1,2")
            value = extra[at + 1]
        elif word.startswith("--workers="):
            value = word.split("=", 1)[1]
        else:
            continue
        try:
            counts = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("--workers takes worker counts separated by commas, "
                             "such as 1,2; got %r" % value) from None
        if not counts or min(counts) < 1:
            raise ValueError("--workers takes positive worker counts, such as 1,2; got %r"
                             % value)
        return sorted(set(counts))
    return None


# -- CPU time of a process tree, from /proc --


# -- reactor's command line as a server --


# -- the runs --

def figures(result, cpu, processes):
    """One run's figures from the load generator's ``result`` and the server's CPU seconds."""
    requests = result["requests"]
    if requests == 0:
        raise RuntimeError("no response in the measured window (%d errors)"
                           % result.get("errors", 0))
    latency = {key: value for key, value in result.items() if re.match(r"p\d+_us$", key)}
    return dict(latency, requests=requests,
                requests_per_second=requests / result["seconds"],
                server_cpu_us_per_request=cpu * 1e6 / requests,
                server_cores=cpu / result["seconds"],
                loadgen_busy=result["cpu_seconds"] / result["seconds"],
                errors=result.get("errors", 0), processes=processes)


def echo_run(workers, scenario, loadgen, warmup, duration):
    from .echo import prime
    conns, size, pipeline = scenario
    with cli_server(["echo"], workers) as server:
        for _ in range(4):              # a few connections, so every worker is likely primed
            prime(server.port)
        command = [loadgen] if loadgen else [sys.executable, os.path.join(LOADGEN_DIR, "pyloadgen.py")]
        command += ["127.0.0.1", str(server.port), str(conns), str(size), str(pipeline),
                    str(warmup), str(duration), "raw"]
        result, cpu = run_held(command, server.cpu, "the load generator")
        server.check_unchanged()
    return figures(result, cpu, len(server.pids))


def http_run(workers, root, loadgen, warmup, duration):
    from .web import check, run_loadgen, run_wrk
    with cli_server(["http", "--root", root], workers) as server:
        check(server.port, HTTP_PATH)
        if loadgen == "wrk":
            result, cpu = run_wrk(None, server.port, HTTP_PATH, warmup, duration,
                                  server_cpu=server.cpu, core=None)
        else:
            result, cpu = run_loadgen(loadgen, None, server.port, HTTP_PATH, warmup, duration,
                                      server_cpu=server.cpu, core=None)
        server.check_unchanged()
    return figures(result, cpu, len(server.pids))


# -- the table --


def workers_rows(label, models, runs, status, notes):
    """The table rows of one scenario, and each model's medians."""
    rows, medians = [], {}
    single = runs.get((label, SINGLE), ())
    for model in models:
        cell, why = medians_or_why(runs, status, (label, model), notes)
        if cell is None:
            rows.append([model, why] + [""] * 7)
            continue
        medians[model] = cell
        mine = runs[label, model]
        cpu_ratio = paired(mine, single, "server_cpu_us_per_request")
        rate_ratio = paired(mine, single, "requests_per_second")
        rows.append([model, "%d" % cell["processes"], "%.0f" % cell["requests_per_second"],
                     "%.1f" % cell["server_cpu_us_per_request"],
                     "n/a" if cpu_ratio is None else "%.2fx" % cpu_ratio,
                     "n/a" if rate_ratio is None else "%.2fx" % rate_ratio,
                     "%.2f" % cell["server_cores"], "%.0f%%" % (100 * cell["loadgen_busy"]),
                     "%d" % cell["errors"]])
    return rows, medians


HEADER = ["model", "processes", "req/s", "server us/req", "cpu/req vs 1 process",
          "req/s vs 1 process", "server cores", "loadgen busy", "errors"]


def print_workers_table(title, label, models, runs, status):
    notes = []
    rows, medians = workers_rows(label, models, runs, status, notes)
    print_table(title, HEADER, rows, [
        "server us/req: CPU (utime + stime, /proc) of the supervisor and all its workers over "
        "the measured window, per request",
        "vs 1 process: median of each round's own ratio (cpu/req < 1.00x: cheaper per request)",
        "server cores: the server's CPU seconds per second; processes: supervisor + workers",
        CORES_NOTE % (os.cpu_count() or "?")] + notes)
    return medians


def plan(counts):
    return [None] + list(counts)


def run_all(what, labels, counts, repeat, measure):
    """Run every (label, model) ``repeat`` rounds, round-robin; return (models, runs, status)."""
    models = [model_name(workers) for workers in plan(counts)]
    workers_of = dict(zip(models, plan(counts)))
    runs = {(label, model): [] for label in labels for model in models}
    status = {}

    def one(label, model):
        run = measure(label, workers_of[model])
        return run, "%9.0f req/s  %6.1f us/req  %.2f cores" % (
            run["requests_per_second"], run["server_cpu_us_per_request"], run["server_cores"])
    round_robin(runs, status, repeat, one, ServerFailed)
    return models, runs, status


def sizes(args):
    repeat = args.repeat or (1 if args.quick else 3)
    warmup, duration = (0.5, 2.0) if args.quick else (1.0, 5.0)
    return repeat, warmup, duration


def echo_main(args, counts):
    from .echo import build_loadgen, fd_limit_problem
    repeat, warmup, duration = sizes(args)
    scenarios = ECHO_QUICK if args.quick else ECHO_FULL
    problem = fd_limit_problem(max(conns for conns, _, _ in scenarios))
    if problem:
        print(problem)
        return 2
    loadgen = build_loadgen()
    labels = {"%d conn x %d B%s" % (c, s, ", %d in flight" % p if p > 1 else " ping-pong"):
              (c, s, p) for c, s, p in scenarios}
    print("echo --workers %s: reactor's own echo server (python -m reactor echo) as 1 process "
          "and under a supervisor with %s worker(s); load: %s, unpinned; %d round(s) (median), "
          "%.0f s each after a %.1f s warm-up"
          % (",".join(map(str, counts)), " / ".join(map(str, counts)),
             "loadgen.c (epoll, C)" if loadgen else
             "the Python stand-in (no C compiler: expect it to saturate)",
             repeat, duration, warmup), flush=True)
    models, runs, status = run_all(
        "echo", list(labels), counts, repeat,
        lambda label, workers: echo_run(workers, labels[label], loadgen, warmup, duration))
    results = []
    for label in labels:
        medians = print_workers_table("echo, %s: 1 process against --workers %s"
                                      % (label, ",".join(map(str, counts))),
                                      label, models, runs, status)
        results += scenario_results(label, models, medians, runs, status)
    if args.json:
        write_json(args.json, "echo-workers", results)
    return 0


def http_main(args, counts, forced=None):
    from .models.http import BODY
    repeat = sizes(args)[0]
    warmup, duration = (1, 2) if args.quick else (2, 5)     # wrk takes whole seconds
    loadgen = "wrk" if shutil.which("wrk") and forced != "c" else None
    if loadgen is None:
        loadgen = build_loadgen("httploadgen")
        if loadgen is None:
            print("http --workers: neither wrk nor a C compiler for httploadgen.c is installed")
            return 1
    label = "static 13 B"
    print("http --workers %s: reactor's own HTTP server (python -m reactor http --root DIR) as "
          "1 process and under a supervisor with %s worker(s); %d keep-alive connections "
          "asking for GET %s, load from %s, unpinned; %d round(s) (median), %d s each after a "
          "%d s warm-up"
          % (",".join(map(str, counts)), " / ".join(map(str, counts)), HTTP_CONNECTIONS,
             HTTP_PATH, "wrk -t 1" if loadgen == "wrk" else "httploadgen.c", repeat, duration,
             warmup), flush=True)
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, HTTP_PATH.lstrip("/")), "wb") as handle:
            handle.write(BODY)
        models, runs, status = run_all(
            "http", [label], counts, repeat,
            lambda label, workers: http_run(workers, root, loadgen, warmup, duration))
    medians = print_workers_table("http, %s (GET %s, %d keep-alive connections): 1 process "
                                  "against --workers %s" % (label, HTTP_PATH, HTTP_CONNECTIONS,
                                                            ",".join(map(str, counts))),
                                  label, models, runs, status)
    if args.json:
        write_json(args.json, "http-workers", scenario_results(label, models, medians, runs,
                                                               status))
    return 0


def workers_option(extra, usage):
    """(counts, None) from ``--workers`` in ``extra`` (counts None when absent), or
    (None, 2) after printing why its value is refused, and ``usage``."""
    try:
        return parse_workers(extra), None
    except ValueError as exc:
        print(exc)
        print(usage)
        return None, 2


def main(args, extra):
    """``echo --workers 1,2`` and ``http --workers 1,2``: ``__main__`` routes them here."""
    counts, refused = workers_option(
        extra, "usage: python -m benchmarks %s --workers 1,2 [--quick] [--repeat R]%s "
        "[--json FILE]" % (args.suite, " [--loadgen wrk|c]" if args.suite == "http" else ""))
    if refused:
        return refused
    if args.suite == "http":
        forced = extra[extra.index("--loadgen") + 1] if "--loadgen" in extra[:-1] else None
        return http_main(args, counts, forced)
    return echo_main(args, counts)

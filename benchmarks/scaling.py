"""Scaling: echo req/s and p99 as the connections grow, 1 -> 10 -> 100 -> 1,000 -> 10,000.

Anchor pattern: the echo suite's, one scenario per connection count: N
connections, 64-byte messages, one in flight on each, against a fresh
server of each model, round-robin over the models in each round. What it
shows is where each concurrency model bends: a thread per connection pays
a stack and a context switch per connection, a loop pays a readiness scan
(select is O(fds) per call, epoll O(ready)). 10,000 connections need about
20,000 fds on this one machine (load generator and server); when
``ulimit -n`` is lower the row says so instead of failing. The thread
models stop at 1,000 connections: 10,000 threads measure the scheduler's
patience, not the model.
"""

import os

from .common import print_table, write_json
from .harness import (build_loadgen, fd_limit_problem, medians_or_why, one_run, round_robin,
                      scenario_results)
from .models import available

COUNTS = (1, 10, 100, 1000, 10000)
QUICK_MODELS = ["reactor", "asyncio-protocol", "selectors-minimal"]
FULL_MODELS = ["reactor", "asyncio-protocol", "asyncio-streams", "selectors-minimal", "uvloop",
               "threads", "threadpool", "gevent", "trio"]
#: Models that are a thread (or more) per connection: not run past this many connections.
THREAD_MODELS = {"threads": 1000, "threadpool": 1000}


def label(count):
    return "{:,} connection{}".format(count, "" if count == 1 else "s")


def main(args, extra):
    if not os.path.exists("/proc/self/stat"):
        print("the scaling suite reads server CPU time from /proc; this platform has none")
        return 1
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    warmup, duration = (0.3, 1.0) if quick else (1.0, 3.0)
    wanted = QUICK_MODELS if quick else FULL_MODELS
    counts = COUNTS
    try:
        if "--models" in extra:
            wanted = extra[extra.index("--models") + 1].split(",")
        if "--counts" in extra:
            counts = tuple(int(n) for n in extra[extra.index("--counts") + 1].split(","))
    except (IndexError, ValueError):
        print("usage: python -m benchmarks scaling [--quick] [--repeat R] [--models A,B] "
              "[--counts 1,10,100] [--json FILE]")
        return 2
    models = [model for model in wanted if available(model) is None]
    skipped = ["%s (%s)" % (model, available(model)) for model in wanted
               if available(model) is not None]
    loadgen = build_loadgen()
    print("scaling suite: echo, 64 B ping-pong on 1 to 10,000 connections; %d round(s), %.1f s "
          "each after %.1f s warm-up; models %s" % (repeat, duration, warmup, ", ".join(models)),
          flush=True)
    status, runs = {}, {}
    for count in counts:
        problem = fd_limit_problem(count)
        for model in models:
            job = (label(count), model)
            runs[job] = []
            if problem:
                status[job] = "skipped: %s" % problem
            elif count > THREAD_MODELS.get(model, count):
                status[job] = "skipped: a thread per connection; not run past %d" \
                              % THREAD_MODELS[model]

    def measure(scenario, model):
        count = int(scenario.split()[0].replace(",", ""))
        run = one_run(model, (count, 64, 1), loadgen, warmup, duration)
        run["connections"] = count
        return run, "%.0f req/s, p99 %.0f us" % (run["requests_per_second"], run["p99_us"])
    round_robin(runs, status, repeat, measure)
    results, rows, notes = [], [], []
    for count in counts:
        medians = {}
        for model in models:
            cell, why = medians_or_why(runs, status, (label(count), model), notes)
            if cell is None:
                rows.append([label(count), model, why, "", "", ""])
                continue
            medians[model] = cell
            rows.append([label(count), model, "%.0f" % cell["requests_per_second"],
                         "%.1f" % cell["server_cpu_us_per_request"], "%.0f" % cell["p99_us"],
                         "%.0f%%" % (100 * cell["loadgen_busy"])])
        for row in scenario_results(label(count), models, medians, runs, status):
            row["connections"] = count
            results.append(row)
    print_table("Scaling: echo 64 B ping-pong by connection count",
                ["connections", "model", "req/s", "server us/req", "p99 us", "loadgen busy"],
                rows, ["loadgen busy >= 90%: the load generator, not the server, set the rate"]
                + notes + (["skipped: " + ", ".join(skipped)] if skipped else []))
    if args.json:
        write_json(args.json, "scaling", results)
    return 0

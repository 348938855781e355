"""TLS suite: TLS echo and full handshakes per second, reactor vs asyncio's TLS.

Anchor pattern: a TLS server's two costs, per request (record encryption and
the memory-BIO plumbing around it) and per connection (the handshake). Both
sides use the stdlib ``ssl`` module, so OpenSSL does the cryptography on both
and the gap is the framework's overhead. Each server runs in its own process
with tests/certs/server.pem (EC P-256); the load comes from ``tlsloadgen.c``
(epoll + OpenSSL, compiled on first use: it needs the OpenSSL headers).
Models run round-robin within each repeat.
"""

import os
import statistics

from .common import print_table, write_json
from .harness import build_loadgen, measure
from .models import models_for

HERE = os.path.dirname(os.path.abspath(__file__))
#: the TLS echo servers (benchmarks/models/), tests/certs/server.pem
TLS_MODELS = models_for("echo-tls")
SCENARIOS = [("echo", 100, 64), ("echo", 100, 16384), ("handshake", 16, 0)]


def build_tls_loadgen():
    """Compile tlsloadgen.c against OpenSSL; return its path, or None if that is not possible."""
    return build_loadgen("tlsloadgen", ["-lssl", "-lcrypto"])


def one_run(model, scenario, loadgen, warmup, duration):
    mode, conns, size = scenario
    command = [loadgen, "127.0.0.1", "{port}", str(conns), str(size or 1),
               str(warmup), str(duration), mode]
    result, cpu_seconds = measure(model, command, warmup, duration)
    count = max(result["requests"], 1)
    # A handshake counts as one request: the handshake scenario's rate is handshakes/s.
    return {"requests_per_second": result["requests"] / result["seconds"],
            "p50_us": result["p50_us"], "p99_us": result["p99_us"],
            "server_cpu_us_per_request": cpu_seconds * 1e6 / count,
            "loadgen_busy": result["cpu_seconds"] / result["seconds"], "errors": result["errors"]}


def main(args, extra):
    loadgen = build_tls_loadgen()
    if loadgen is None:
        print("the tls suite needs a C compiler and the OpenSSL headers (libssl-dev) for its "
              "load generator; skipped")
        return 0
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    warmup, duration = (0.5, 2.0) if quick else (1.0, 4.0)
    print("tls suite: %d run(s) per cell (median), %.0f s each" % (repeat, duration), flush=True)
    results = []
    for scenario in SCENARIOS:
        mode, conns, size = scenario
        runs = {model: [] for model in TLS_MODELS}
        for _ in range(repeat):
            for model in TLS_MODELS:
                runs[model].append(one_run(model, scenario, loadgen, warmup, duration))
        cells = {model: {key: statistics.median(run[key] for run in runs[model])
                         for key in runs[model][0]} for model in TLS_MODELS}
        for model in TLS_MODELS:
            scenario_name = ("handshakes, %d conn" % conns if mode == "handshake"
                             else "echo %d B x %d conn" % (size, conns))
            results.append(dict(cells[model], scenario=scenario_name, mode=mode,
                                connections=conns, size=size, model=model, runs=runs[model]))
        base = cells["asyncio-tls"]
        unit = "handshakes/s" if mode == "handshake" else "req/s"
        rows = [[model, "%.0f" % cell["requests_per_second"],
                 "%.2fx" % (cell["requests_per_second"] / base["requests_per_second"]),
                 "%.1f" % cell["server_cpu_us_per_request"],
                 "%.2fx" % (cell["server_cpu_us_per_request"] / base["server_cpu_us_per_request"]),
                 "%.0f" % cell["p99_us"], "%d" % cell["errors"],
                 "%.0f%%" % (100 * cell["loadgen_busy"])] for model, cell in cells.items()]
        title = ("TLS full handshakes, %d in flight" % conns if mode == "handshake"
                 else "TLS echo, %d connections x %d B ping-pong" % (conns, size))
        print_table(title, ["model", unit, "vs asyncio", "server us each", "cpu vs asyncio",
                            "p99 us", "errors", "loadgen busy"], rows,
                    ["targets: echo 100 x 64 B >= 1.2x asyncio; handshakes/s >= asyncio"])
    if args.json:
        write_json(args.json, "tls", results)
    return 0

"""UDP suite: datagram echo, reactor vs asyncio's DatagramProtocol vs a bare selectors loop.

Anchor pattern: the UDP echo (recvfrom -> sendto), the core of any
request/response datagram service. Each server runs in its own process; the
C load generator drives 10 connected UDP sockets with 16 datagrams in flight
each, at 64 B and 1,400 B (a typical MTU-sized payload), and reports
datagrams/s, latency and lost datagrams; the server's CPU time per datagram
comes from /proc. Models run round-robin within each repeat.
"""

import statistics

from .common import print_table, write_json
from .harness import build_loadgen, one_run
from .models import models_for

#: the UDP echo servers (benchmarks/models/)
UDP_MODELS = models_for("echo-udp")


def main(args, extra):
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    warmup, duration = (0.5, 2.0) if quick else (1.0, 4.0)
    loadgen = build_loadgen()
    if loadgen is None:
        print("the udp suite needs a C compiler (gcc or cc) for its load generator; skipped")
        return 0
    print("udp suite: %d run(s) per cell (median), %.0f s each" % (repeat, duration), flush=True)
    results = []
    for size in (64, 1400):
        scenario = (10, size, 16)
        runs = {model: [] for model in UDP_MODELS}
        for _ in range(repeat):
            for model in UDP_MODELS:
                runs[model].append(one_run(model, scenario, loadgen, warmup, duration,
                                           framing="udp"))
        cells = {}
        for model in UDP_MODELS:
            cells[model] = {key: statistics.median(run[key] for run in runs[model])
                            for key in runs[model][0]}
            results.append(dict(cells[model], scenario="%d B datagrams" % size, size=size,
                                model=model, runs=runs[model]))
        base = cells["asyncio-udp"]
        rows = [[model, "%.0f" % cell["requests_per_second"],
                 "%.2fx" % (cell["requests_per_second"] / base["requests_per_second"]),
                 "%.2f" % cell["server_cpu_us_per_request"],
                 "%.2fx" % (cell["server_cpu_us_per_request"]
                            / base["server_cpu_us_per_request"]),
                 "%.0f" % cell["p99_us"], "%d" % cell["lost"],
                 "%.0f%%" % (100 * cell["loadgen_busy"])]
                for model, cell in cells.items()]
        print_table("UDP echo, %d B datagrams, 10 sockets x 16 in flight" % size,
                    ["model", "datagrams/s", "vs asyncio", "server us/dgram", "cpu vs asyncio",
                     "p99 us", "lost", "loadgen busy"], rows,
                    ["targets (64 B): >= 1.3x asyncio datagrams/s, <= 0.75x its server CPU"])
    if args.json:
        write_json(args.json, "udp", results)
    return 0

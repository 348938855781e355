"""RESP suite: ``python -m reactor kv`` against redis-server, driven by redis-benchmark.

Anchor pattern: a pipelined request/response server. Both servers take the
same load in the same run: ``redis-benchmark -t set,get -c 50 -P 16`` (16
commands in flight per connection) and ``-P 1`` (one). On a machine with
two or more cores each server is pinned to core 0 and redis-benchmark to
core 1 (``taskset``), so neither steals the other's core. Pure Python
against C: the issue's targets are 0.25x redis-server's req/s pipelined and
0.8x unpipelined (where redis-benchmark itself is the bottleneck).

Then memory: one million keys (``key:N`` -> 3 bytes, redis-benchmark's
default value) loaded with pipelined MSETs; the resident set of each
server before and after.

Last, in-process and without sockets, what a pipelined command costs kv's
Python: the codec's parse, the dispatch, the handler and the reply encoding,
per command, for 16-command pipelines of SET and of GET.

Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools);
without them the suite says so and runs only the in-process part.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

from .common import print_table, write_json
from .harness import free_port, pinned, stop

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def start(model, port):
    """Start kv or redis-server on ``port``, pinned to core 0; return the process once it accepts."""
    if model == "kv":
        command = [sys.executable, "-m", "reactor", "--log-level", "WARNING", "kv",
                   "--port", str(port)]
    else:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--daemonize", "no"]
    process = subprocess.Popen(pinned(0, command), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("%s did not start on port %d" % (model, port))


def benchmark(port, pipeline, requests, clients=50):
    """Run redis-benchmark -t set,get on ``port``; return {"SET": req/s, "GET": req/s}."""
    output = subprocess.run(pinned(1, ["redis-benchmark", "-p", str(port), "-t", "set,get",
                                       "-c", str(clients), "-P", str(pipeline),
                                       "-n", str(requests), "--csv"]),
                            capture_output=True, text=True, timeout=600).stdout
    rates = {}
    for line in output.splitlines():
        fields = [field.strip('"') for field in line.split(",")]
        if len(fields) > 1 and fields[0] in ("SET", "GET"):
            rates[fields[0]] = float(fields[1])
    return rates


def resident_bytes(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def load_keys(port, count, batch=1000):
    """SET ``count`` keys (key:N -> 'xxx') with pipelined MSETs; wait for every reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for start_at in range(0, count, batch):
            words = [b"MSET"]
            for index in range(start_at, min(start_at + batch, count)):
                words += [b"key:%d" % index, b"xxx"]
            sock.sendall(b"*%d\r\n" % len(words)
                         + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(64)
            assert reply == b"+OK\r\n", reply


def in_process_cost(commands_per_pipeline=16, pipelines=20000):
    """Return µs per command for SET and GET pipelines through KVProtocol, no sockets."""
    sys.path.insert(0, ROOT)
    import reactor
    from reactor.apps.kv import KVServer

    class Sink:
        """Just enough transport for the protocol: writes are counted, not sent."""
        written = 0
        loop = None

        def write(self, data):
            self.written += len(data)

        def is_closing(self):
            return False

        def get_extra_info(self, name, default=None):
            return default
    loop = reactor.Reactor()
    results = {}
    try:
        server = KVServer(loop)
        conn = server.protocol()
        conn.connection_made(Sink())
        for name, words in (("SET", [b"SET", b"key:000000000001", b"xxx"]),
                            ("GET", [b"GET", b"key:000000000001"])):
            one = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
            chunk = one * commands_per_pipeline
            samples = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(pipelines):
                    conn.data_received(chunk)
                samples.append(time.perf_counter() - started)
            results[name] = min(samples) * 1e6 / (pipelines * commands_per_pipeline)
    finally:
        loop.close()
    return results


def main(args, extra):
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    requests = 100000 if quick else 1000000
    keys = 100000 if quick else 1000000
    results = []
    missing = [name for name in ("redis-server", "redis-benchmark") if not shutil.which(name)]
    if missing:
        print("resp suite: %s not installed (apt install redis-server redis-tools); "
              "running the in-process part only" % " and ".join(missing))
    else:
        print("resp suite: redis-benchmark -t set,get -c 50, %s requests, %d run(s) per cell "
              "(median), servers on core 0, redis-benchmark on core 1"
              % ("{:,}".format(requests), repeat), flush=True)
        rows = []
        for pipeline in (16, 1):
            runs = {"kv": [], "redis-server": []}
            for _ in range(repeat):
                for model in runs:
                    port = free_port()
                    process = start(model, port)
                    try:
                        runs[model].append(benchmark(port, pipeline, requests))
                    finally:
                        stop(process)
                    print("  -P %-2d %-12s %s" % (pipeline, model, runs[model][-1]), flush=True)
            for test in ("SET", "GET"):
                kv = statistics.median(run.get(test, 0.0) for run in runs["kv"])
                redis = statistics.median(run.get(test, 0.0) for run in runs["redis-server"])
                scenario = "%s, %d in flight" % (test, pipeline)
                for model, rate in (("kv", kv), ("redis-server", redis)):
                    results.append({"scenario": scenario, "model": model, "pipeline": pipeline,
                                    "test": test, "requests_per_second": rate,
                                    "runs": [run.get(test) for run in runs[model]]})
                rows.append(["-P %d" % pipeline, test, "%.0f" % kv, "%.0f" % redis,
                             "%.2fx" % (kv / redis if redis else 0.0),
                             ">= 0.25x" if pipeline > 1 else ">= 0.8x"])
        print_table("redis-benchmark against kv and redis-server (requests/s)",
                    ["pipeline", "test", "kv", "redis-server", "kv / redis", "target"], rows)
        memory_rows = []
        for model in ("kv", "redis-server"):
            port = free_port()
            process = start(model, port)
            try:
                before = resident_bytes(process.pid)
                load_keys(port, keys)
                after = resident_bytes(process.pid)
            finally:
                stop(process)
            results.append({"scenario": "memory with %d keys" % keys, "model": model,
                            "keys": keys, "rss_before_bytes": before, "rss_after_bytes": after,
                            "rss_bytes_per_key": (after - before) / keys})
            memory_rows.append([model, "%.1f MiB" % (before / 2**20), "%.1f MiB" % (after / 2**20),
                                "%.0f B" % ((after - before) / keys)])
        print_table("Resident memory with %s keys (key:N -> 3 bytes)" % "{:,}".format(keys),
                    ["server", "empty", "loaded", "per key"], memory_rows)
    cost = in_process_cost()
    results.append({"scenario": "in-process cost, 16-command pipelines", "model": "kv",
                    "in_process_us_per_command": cost})
    print_table("kv in-process, 16-command pipelines: parse + dispatch + handler + encode",
                ["command", "us per command"], [[name, "%.2f" % us] for name, us in cost.items()],
                ["target: <= 2 us per pipelined command"])
    if args.json:
        write_json(args.json, "resp", results)
    return 0

"""A Python stand-in for loadgen.c, used only when no C compiler is available.

Same arguments, environment (``LOADGEN_PREAMBLE``, ``LOADGEN_HOLD``) and
output. It saturates long before the servers do,
so the suite marks its runs as load-generator bound; server CPU per
request is still meaningful.
"""

import json
import os
import resource
import selectors
import socket
import sys
import time


def main():
    host, port, conns, size, pipeline, warmup, duration = sys.argv[1:8]
    framing = sys.argv[8] if len(sys.argv) > 8 else "raw"
    port, conns, size, pipeline = int(port), int(conns), int(size), int(pipeline)
    warmup, duration = float(warmup), float(duration)
    selector = selectors.DefaultSelector()
    payload = b"x" * size
    if framing == "length":
        payload = (size - 4).to_bytes(4, "big") + b"x" * (size - 4)
    state = {}
    start = time.monotonic()
    for _ in range(conns):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if os.environ.get("LOADGEN_PREAMBLE"):          # an auth token, not echoed
            sock.sendall(os.environ["LOADGEN_PREAMBLE"].encode() + b"\n")
        sock.sendall(payload * pipeline)
        sock.setblocking(False)
        state[sock] = [0, [start] * pipeline]
        selector.register(sock, selectors.EVENT_READ)
    measure_from, stop_at = start + warmup, start + warmup + duration
    latencies = []
    cpu0 = None
    while True:
        now = time.monotonic()
        if cpu0 is None and now >= measure_from:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = usage.ru_utime + usage.ru_stime
            if os.environ.get("LOADGEN_HOLD"):          # as loadgen.c: the window opens
                print("measuring", flush=True)
        if now >= stop_at:
            break
        for key, _ in selector.select(0.1):
            sock = key.fileobj
            data = sock.recv(65536)
            if not data:
                selector.unregister(sock)
                continue
            entry = state[sock]
            entry[0] += len(data)
            done_at = time.monotonic()
            while entry[0] >= size:
                entry[0] -= size
                sent_at = entry[1].pop(0)
                if cpu0 is not None and done_at < stop_at:
                    latencies.append(done_at - sent_at)
                entry[1].append(done_at)
                sock.send(payload)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    pick = lambda p: latencies[int(len(latencies) * p)] * 1e6 if latencies else 0.0
    print(json.dumps({"requests": len(latencies), "seconds": duration, "p50_us": pick(0.5),
                      "p90_us": pick(0.90), "p99_us": pick(0.99),
                      "p999_us": pick(0.999), "cpu_seconds": usage.ru_utime + usage.ru_stime - (cpu0 or 0),
                      "errors": 0}), flush=True)
    if os.environ.get("LOADGEN_HOLD"):                  # keep the connections until stdin closes
        sys.stdin.read()


if __name__ == "__main__":
    main()

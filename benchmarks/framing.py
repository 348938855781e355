"""Framing suite: decode throughput vs asyncio streams, the endless line, framed echo.

Anchor pattern: turning a byte stream into messages, the work every
protocol on a reactor does per chunk. Three parts:

1. Decode throughput of each reactor framer against asyncio's
   ``StreamReader`` doing the same job (``readuntil`` for delimiters,
   ``readexactly`` for lengths), at 16 B, 1 KiB and 64 KiB frames fed in
   4 KiB and 64 KiB chunks. The asyncio side runs as asyncio code runs: a
   producer feeds one chunk per loop iteration, a consumer awaits frames.
2. A line that never ends, fed in 4 KiB chunks, at three limits: it must
   fail once past the limit, having buffered at most limit + one chunk, in
   time proportional to the limit (linear, not quadratic).
3. A length-prefixed echo at 100 connections x 16 frames in flight:
   reactor's FramedProtocol against asyncio streams (readexactly) and
   against asyncio's Protocol using reactor's framer, each in its own
   process, driven by the C load generator.
"""

import asyncio
import statistics
import time

from reactor.errors import FramingError
from reactor.framing import FixedSizeFramer, LengthPrefixFramer, LineFramer, NetstringFramer

from .common import median_seconds, print_table, write_json
from .harness import build_loadgen, one_run
from .models import models_for

LIMIT = 1 << 20
#: the length-prefixed echo servers (benchmarks/models/)
FRAMED_MODELS = models_for("echo-framed")


def make_stream(kind, frame_size, total_bytes):
    """Return (wire bytes, frame count) for ``kind`` frames of ``frame_size`` payload bytes."""
    payload = b"p" * frame_size
    if kind == "line":
        one = payload + b"\n"
    elif kind == "length":
        one = frame_size.to_bytes(4, "big") + payload
    elif kind == "netstring":
        one = b"%d:%s," % (frame_size, payload)
    else:
        one = payload
    count = max(1, total_bytes // len(one))
    return one * count, count


def reactor_decode(kind, frame_size, chunks):
    framer = {"line": lambda: LineFramer(LIMIT), "length": lambda: LengthPrefixFramer(4, "big", LIMIT),
              "netstring": lambda: NetstringFramer(LIMIT),
              "fixed": lambda: FixedSizeFramer(frame_size)}[kind]()
    started = time.perf_counter()
    frames = 0
    feed = framer.feed
    for chunk in chunks:
        frames += len(feed(chunk))
    return time.perf_counter() - started, frames


def asyncio_decode(kind, frame_size, chunks):
    async def run():
        reader = asyncio.StreamReader(limit=LIMIT + 16)

        async def produce():
            for chunk in chunks:
                reader.feed_data(chunk)
                await asyncio.sleep(0)
            reader.feed_eof()

        async def consume():
            frames = 0
            try:
                while True:
                    if kind == "line":
                        await reader.readuntil(b"\n")
                    elif kind == "length":
                        header = await reader.readexactly(4)
                        await reader.readexactly(int.from_bytes(header, "big"))
                    elif kind == "netstring":
                        digits = await reader.readuntil(b":")
                        await reader.readexactly(int(digits[:-1]) + 1)
                    else:
                        await reader.readexactly(frame_size)
                    frames += 1
            except asyncio.IncompleteReadError:
                return frames

        producer = asyncio.ensure_future(produce())
        started = time.perf_counter()
        frames = await consume()
        elapsed = time.perf_counter() - started
        await producer
        return elapsed, frames
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def endless_line(limit, chunk_size=4096, total=64 << 20):
    """Feed a line with no end; return (seconds to the error, bytes buffered at the error)."""
    framer = LineFramer(max_length=limit)
    chunk = b"z" * chunk_size
    fed = 0
    biggest = 0
    started = time.perf_counter()
    try:
        while fed < total:
            framer.feed(chunk)
            fed += chunk_size
            biggest = max(biggest, framer.buffered)
    except FramingError:
        return time.perf_counter() - started, biggest, fed
    raise AssertionError("a %d-byte line never raised" % fed)


def main(args, extra):
    quick = args.quick
    repeat = args.repeat or (3 if quick else 5)
    total = (1 << 20) if quick else (8 << 20)
    results = []
    rows = []
    print("framing suite: %d MiB per cell, %d runs (median)" % (total >> 20, repeat), flush=True)
    asyncio_name = {"line": "readuntil", "length": "readexactly x2",
                    "netstring": "readuntil+readexactly", "fixed": "readexactly"}
    for kind in ("line", "length", "netstring", "fixed"):
        for frame_size in (16, 1024, 65536):
            wire, count = make_stream(kind, frame_size, max(total, 4 * frame_size))
            for chunk_size in (4096, 65536):
                chunks = [wire[i:i + chunk_size] for i in range(0, len(wire), chunk_size)]
                cell = {}
                for model, decode in (("reactor", reactor_decode), ("asyncio", asyncio_decode)):
                    def run_once():
                        seconds, frames = decode(kind, frame_size, chunks)
                        assert frames == count, (model, kind, frames, count)
                        return seconds
                    seconds, samples = median_seconds(run_once, repeat)
                    cell[model] = seconds
                    results.append({"scenario": "decode %s, %d B frames in %d B chunks"
                                    % (kind, frame_size, chunk_size),
                                    "part": "decode", "framer": kind, "frame_bytes": frame_size,
                                    "chunk_bytes": chunk_size, "model": model, "frames": count,
                                    "median_seconds": seconds, "samples": samples})
                ratio = cell["asyncio"] / cell["reactor"]
                rows.append([kind, frame_size, chunk_size,
                             "%.0f" % (count / cell["reactor"]),
                             "%.0f" % (len(wire) / cell["reactor"] / 1e6),
                             "%.0f" % (count / cell["asyncio"]), asyncio_name[kind],
                             "%.2fx" % ratio])
        print("  done: %s" % kind, flush=True)
    print_table("Decode throughput (reactor framer vs asyncio StreamReader, same data)",
                ["framer", "frame B", "chunk B", "reactor frames/s", "reactor MB/s",
                 "asyncio frames/s", "asyncio method", "ratio"], rows,
                ["targets: line 16 B / 64 KiB chunks >= 2x readuntil; "
                 "length >= 2x readexactly"])

    endless_rows = []
    for limit in (1 << 20, 4 << 20, 16 << 20):
        seconds, biggest, fed = endless_line(limit)
        results.append({"scenario": "endless line, limit %d MiB" % (limit >> 20),
                        "model": "reactor", "part": "endless line", "limit": limit,
                        "seconds": seconds,
                        "max_buffered": biggest, "fed_bytes": fed})
        endless_rows.append(["%d MiB" % (limit >> 20), "%.1f ms" % (seconds * 1e3),
                             "%.2f us" % (seconds * 1e6 / (limit >> 10)),
                             "%d" % biggest, "%d" % (limit + 4096),
                             "yes" if biggest <= limit + 4096 else "NO"])
    print_table("A line that never ends (64 MiB offered in 4 KiB chunks)",
                ["limit", "time to error", "per KiB", "max buffered", "allowed",
                 "within limit + chunk"], endless_rows,
                ["linear time: 'per KiB' stays flat as the limit grows"])

    loadgen = build_loadgen()
    duration, warmup = (2.0, 0.5) if quick else (4.0, 1.0)
    echo_rows = []
    cells = {}
    for model in FRAMED_MODELS:
        runs = [one_run(model, (100, 64, 16), loadgen, warmup, duration, framing="length")
                for _ in range(1 if quick else 3)]
        cell = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        cells[model] = cell
        results.append(dict(cell, scenario="framed echo, 100 conn x 64 B, 16 in flight",
                            part="framed echo", model=model, runs=runs))
    base = cells["asyncio-streams-length"]
    for model in FRAMED_MODELS:
        cell = cells[model]
        echo_rows.append([model, "%.0f" % cell["requests_per_second"],
                          "%.2fx" % (cell["requests_per_second"] / base["requests_per_second"]),
                          "%.0f" % cell["p99_us"], "%.2f" % cell["server_cpu_us_per_request"],
                          "%.0f%%" % (100 * cell["loadgen_busy"])])
    print_table("Length-prefixed echo, 100 connections x 16 frames in flight, 64 B frames",
                ["model", "frames/s", "vs asyncio streams", "p99 us", "server us/frame",
                 "loadgen busy"], echo_rows)
    if args.json:
        write_json(args.json, "framing", results)
    return 0

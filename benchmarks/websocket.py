"""WebSocket suite: reactor's WebSocket server against the ``websockets`` library and aiohttp.

Anchor pattern: the WebSocket echo server and the broadcast fan-out (one
message to many members, as a chat room or a live feed sends it).

Echo: 100 connections, one masked message in flight on each, ask every
model to echo 64 B text messages and 16 KiB binary ones. Broadcast: 1,000
member connections that only read and one control connection; each round
the control connection sends ``go 100`` and the server sends 100 text
messages of 64 B to every member, one after another; the round's time runs
until every member has *received* all 100 (deliveries/s = 100 x 1,000 /
that time, the sum over the rounds). The models are in ``models/websocket.py``:
reactor (``python -m reactor echo --websocket``; for broadcast a Router
model using ``reactor.websocket.protocol.broadcast``), the ``websockets``
library's asyncio server (on asyncio, and on uvloop for echo; its
``broadcast()`` helper) and aiohttp's WebSocketResponse (an awaited
``send_str`` per member). permessage-deflate is off everywhere: the load
generator does not offer it and the models are configured without it, so
all compare raw frames. A model that is not installed is reported as
skipped; one whose server does not start, or echoes wrongly, as failed.

Load: ``wsloadgen.c`` (epoll, C, compiled on first use). The server is
pinned to core 0 and the load generator to core 1 (taskset) when there are
two cores. Per run: messages/s (deliveries/s) and, for echo, p50/p99 from
the load generator; the server's CPU time per message (utime + stime, from
/proc) over the measured window, which stays meaningful when the load
generator is the bottleneck ("loadgen busy" near 100%). Each model is run
``--repeat`` times (default 3, ``--quick`` 1), round-robin, in fresh
processes; the tables show medians, and ratios are medians of each round's
own ratio.

Last, the Python heap per idle WebSocket (tracemalloc in the server, after
each connection has had one message echoed) for reactor, websockets and
aiohttp, as the http suite measures idle keep-alive connections.
"""

import os
import socket
import statistics

from reactor.websocket import FrameParser, Message, check_server_response, \
    client_request_headers, encode_message

from .common import print_table
from .harness import (
    StartFailed, build_loadgen, fd_limit_problem, heap_target, idle_heap_table, medians_or_why,
    paired, pinned, print_targets, process_cpu_seconds, ratio_targets, read_until, round_robin,
    run_held, scenario_results, serving, verdict)
from .models import available, models_for

HERE = os.path.dirname(os.path.abspath(__file__))
#: the WebSocket servers (benchmarks/models/websocket.py): echo, broadcast, idle heap
ECHO_MODELS = models_for("websocket")
BROADCAST_MODELS = models_for("websocket-broadcast")
IDLE_MODELS = models_for("websocket", idle=True)
CONNECTIONS = 100
MEMBERS = 1000
#: messages sent to every member per broadcast round
MESSAGES = 100
#: echo scenario label -> (message bytes, text|binary)
ECHO = {"64 B text": (64, "text"), "16 KiB binary": (16384, "binary")}
BROADCAST = "broadcast to 1,000"
#: --quick (True) or not -> (rounds of every model, warm-up s, measured s of an echo run,
#: broadcast rounds per run, idle connections)
SIZES = {True: (1, 1, 2, 3, 1000), False: (3, 2, 5, 10, 10000)}
#: scenario -> the reactor model the others are compared with
REACTOR = dict({label: "reactor" for label in ECHO}, **{BROADCAST: "reactor-broadcast"})


# -- a blocking WebSocket client (reactor's sans-I/O codec) for checks and idle connections --

def upgrade_request(port, path="/echo"):
    """Return (key, bytes of the upgrade request), offering no extension."""
    key, fields = client_request_headers("127.0.0.1:%d" % port, path)
    lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % field for field in fields]
    return key, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_upgrade(sock, key):
    """Read the server's answer to the upgrade; check the 101; return the bytes after it."""
    head, rest = read_until(sock, b"\r\n\r\n").split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
    if status != 101:
        raise RuntimeError("the upgrade was answered %s" % lines[0])
    check_server_response(status, headers, key)
    if any(name.lower() == "sec-websocket-extensions" for name, _ in headers):
        raise RuntimeError("an extension was agreed that nobody offered")
    return rest


def read_message(sock, parser, pending=b""):
    """The next data message's payload (str or bytes), skipping control frames."""
    data = pending
    while True:
        for event in parser.feed(data):
            if isinstance(event, Message):
                return event.data
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("closed before a message came back")


def check(port):
    """A text and a binary message echoed, each with its type, on one connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key, request = upgrade_request(port)
        sock.sendall(request)
        pending = read_upgrade(sock, key)
        parser = FrameParser(expect_masked=False)
        for message in ("hello", bytes(range(256)) * 80):
            sock.sendall(encode_message(message, mask=True))
            echoed = read_message(sock, parser, pending)
            pending = b""
            if echoed != message:
                raise RuntimeError("sent %r..., echoed %r..." % (message[:20], echoed[:20]))


# -- runs ------------------------------------------------------------------------------------

def one_echo(model, loadgen, label, warmup, duration):
    """Echo ``label``'s messages on a fresh ``model`` server; return the run's figures."""
    size, kind = ECHO[label]
    with serving(model, protocol="websocket") as (server, port):
        check(port)
        result, cpu = run_held(
            pinned(1, [loadgen, "127.0.0.1", str(port), str(CONNECTIONS), "echo", str(size),
                       kind, str(warmup), str(duration)]),
            lambda: process_cpu_seconds(server.pid), "wsloadgen")
    if result["messages"] == 0:
        raise RuntimeError("no echo in the measured window (%d errors)" % result["errors"])
    return {"messages": result["messages"],
            "messages_per_second": result["messages"] / result["seconds"],
            "server_cpu_us_per_message": cpu * 1e6 / result["messages"], "p50_us": result["p50_us"],
            "p99_us": result["p99_us"], "loadgen_busy": result["cpu_seconds"] / result["seconds"],
            "errors": result["errors"]}


def one_broadcast(model, loadgen, rounds):
    """Broadcast rounds on a fresh ``model`` server; return the run's figures."""
    with serving(model, protocol="websocket-broadcast") as (server, port):
        check(port)
        result, cpu = run_held(
            pinned(1, [loadgen, "127.0.0.1", str(port), str(MEMBERS), "broadcast",
                       str(MESSAGES), str(rounds)]),
            lambda: process_cpu_seconds(server.pid), "wsloadgen")
    if result["errors"] or not result["deliveries"]:
        raise RuntimeError("a member missed messages or was closed (see the server's log)")
    return {"deliveries": result["deliveries"],
            "messages_per_second": result["deliveries"] / result["seconds"],
            "server_cpu_us_per_message": cpu * 1e6 / result["deliveries"],
            "p50_round_ms": result["p50_round_s"] * 1e3,
            "server_share": result["server_seconds"] / result["seconds"],
            "loadgen_busy": result["cpu_seconds"] / result["seconds"], "errors": 0}


def scenario_table(title, label, models, runs, status, columns, notes):
    """Print one scenario's table (``columns``: (header, key, format, scale)); return medians."""
    rows, medians, failures = [], {}, []
    for model in models:
        cell, why = medians_or_why(runs, status, (label, model), failures)
        if cell is None:
            rows.append([model, why] + [""] * len(columns))
            continue
        medians[model] = cell
        ratio = paired(runs.get((label, REACTOR[label]), ()), runs[label, model],
                       "messages_per_second")
        rows.append([model] + [fmt % (cell[key] * scale) for _, key, fmt, scale in columns]
                    + ["n/a" if ratio is None else "%.2fx" % ratio])
    print_table(title, ["model"] + [column[0] for column in columns] + ["reactor / model"],
                rows, ["reactor / model: median of each round's own ratio (> 1: reactor faster)",
                       "loadgen busy >= 90%: the load generator, not the server, set the rate"]
                + list(notes) + failures)
    return medians


#: table columns: (header, key, format, scale)
ECHO_COLUMNS = [("msg/s", "messages_per_second", "%.0f", 1),
                ("server us/msg", "server_cpu_us_per_message", "%.1f", 1),
                ("p50 ms", "p50_us", "%.2f", 1e-3), ("p99 ms", "p99_us", "%.2f", 1e-3),
                ("loadgen busy", "loadgen_busy", "%.0f%%", 100)]
BROADCAST_COLUMNS = [("deliveries/s", "messages_per_second", "%.0f", 1),
                     ("server us/delivery", "server_cpu_us_per_message", "%.2f", 1),
                     ("round p50 ms", "p50_round_ms", "%.1f", 1),
                     ("server sending", "server_share", "%.0f%%", 100),
                     ("loadgen busy", "loadgen_busy", "%.0f%%", 100)]


def websocket_batch(port, size, clients):
    """Open ``size`` WebSockets (added to ``clients``), each having had one message echoed."""
    batch = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(size)]
    clients += batch
    keys = []
    for sock in batch:
        key, request = upgrade_request(port)
        sock.sendall(request)
        keys.append(key)
    pending = [read_upgrade(sock, key) for sock, key in zip(batch, keys)]
    for sock in batch:
        sock.sendall(encode_message("idle", mask=True))
    for sock, rest in zip(batch, pending):
        if read_message(sock, FrameParser(expect_masked=False), rest) != "idle":
            raise RuntimeError("the server echoed the wrong message")


def main(args, extra):
    if extra:
        print("usage: python -m benchmarks websocket [--quick] [--repeat R] [--json FILE]")
        return 2
    if not os.path.exists("/proc/self/stat"):
        print("the websocket suite reads server CPU time from /proc; this platform has none")
        return 1
    loadgen = build_loadgen("wsloadgen")
    if loadgen is None:
        print("websocket suite: no C compiler for wsloadgen.c (or it did not build)")
        return 1
    repeat, warmup, duration, rounds, idle_count = SIZES[bool(args.quick)]
    repeat = args.repeat or repeat
    print("websocket suite: echo on %d connections, broadcast %d x 64 B to %s members per "
          "round (%d rounds after a warm-up); wsloadgen.c on core 1, servers on core 0; "
          "%d round(s) (median), %d s each after a %d s warm-up"
          % (CONNECTIONS, MESSAGES, "{:,}".format(MEMBERS), rounds, repeat, duration, warmup),
          flush=True)
    jobs = [(label, model) for label in ECHO for model in ECHO_MODELS]
    jobs += [(BROADCAST, model) for model in BROADCAST_MODELS]
    status = {job: "skipped: " + available(job[1]) for job in jobs if available(job[1])}
    problem = fd_limit_problem(MEMBERS + 1)
    for model in BROADCAST_MODELS:
        if problem:
            status.setdefault((BROADCAST, model), "skipped: " + problem)
    runs = {job: [] for job in jobs if job not in status}

    def measure(label, model):
        if label == BROADCAST:
            run = one_broadcast(model, loadgen, rounds)
            line = "%9.0f deliveries/s  %6.2f us/delivery"
        else:
            run = one_echo(model, loadgen, label, warmup, duration)
            line = "%9.0f msg/s  %6.1f us/msg"
        return run, line % (run["messages_per_second"], run["server_cpu_us_per_message"])

    round_robin(runs, status, repeat, measure, StartFailed)
    results = []
    for label in list(ECHO) + [BROADCAST]:
        broadcast = label == BROADCAST
        models = BROADCAST_MODELS if broadcast else ECHO_MODELS
        if broadcast:
            title = ("%s: %d messages of 64 B to each of %s members per round"
                     % (label, MESSAGES, "{:,}".format(MEMBERS)))
            notes = ["deliveries/s: messages x members / time until every member received "
                     "all of them", "server sending: the server's own time writing them, as "
                     "a share of that"]
        else:
            title = "echo %s: %d connections, one message in flight on each" % (label,
                                                                                CONNECTIONS)
            notes = []
        medians = scenario_table(title, label, models, runs, status,
                                 BROADCAST_COLUMNS if broadcast else ECHO_COLUMNS, notes)
        results += scenario_results(label, models, medians, runs, status)
    heap = idle_heap_table("WebSocket", [m for m in IDLE_MODELS if not available(m)],
                           idle_count, results, open_batch=websocket_batch, protocol="websocket",
                           check_server=check)
    rows = ratio_targets([("64 B echo >= 1.5x websockets (msg/s)", "64 B text",
                           ("64 B text", "websockets"), 1.5)], runs, results, "messages_per_second")
    good = [run for run in runs.get((BROADCAST, "reactor-broadcast"), ()) if run]
    value = statistics.median(run["messages_per_second"] for run in good) if good else None
    rows.append(["broadcast to 1,000 >= 200,000 deliveries/s",
                 "n/a" if value is None else "%.0f/s (%.2fx)" % (value, value / 200000),
                 verdict(value, 200000)])
    results.append({"target": rows[-1][0], "deliveries_per_second": value,
                    "verdict": rows[-1][2]})
    heap_target(heap.get("reactor"), "WebSocket", rows, results)
    return print_targets("Targets (reactor; ratios: median of each round's own ratio, same run)",
                         rows, results, args.json, "websocket")

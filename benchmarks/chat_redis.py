"""chat-redis suite: chat fan-out through Redis pub/sub between two processes, against one.

``python -m benchmarks chat-redis [--receivers M] [--senders S] [--quick] [--repeat R]``

A redis-server on a free port, and chat processes started as
``python -m reactor chat --port P --redis redis://127.0.0.1:RP --fanout-rate 0``.
``--fanout-rate 0`` turns off the per-member delivery budget (default
20,000 deliveries/s), so the rate measured is what the servers and Redis
sustain, not the budget. The models:

- ``2 processes``: the senders on process A, M receivers on process B, all
  in ``#lobby``: every line crosses from A through Redis to B, which writes
  it to its M members;
- ``1 process``: senders and receivers all on A (still with ``--redis``);
- ``1 process, no Redis``: the same without ``--redis``, for reference.

The client is this process, one selectors loop: S senders (default 1) write
one fixed 33-byte line after another as fast as their sockets take them
(non-blocking sends: the server's backpressure holds them), each with at
most W lines in flight (sent, and not yet received by every receiver;
W = 2,000 / S), so no queue (chat's, Redis's output buffer) grows without
bound. Every receiver reads and counts only the lines that are exactly
``sK: <that payload>``, K a sender's nick. After the sockets connect (and a
line from A has reached every receiver, so B is subscribed), a warm-up,
then the measured window: delivered messages/s = lines counted at all the
receivers / seconds, and lines/s = that / M. Then the senders stop and the
receivers are given 5 s to catch up: what they never received is "lost",
what they received more often than it was sent "dup".

Also per run: the CPU (utime + stime, /proc) of the chat processes and of
redis-server per delivered message, and how busy this client was (its CPU
seconds per second; near 100% it, not the servers, set the rate). On a
2-core machine the client, redis-server and the chat processes share the
cores. Each model is run ``--repeat`` times (default 3, ``--quick`` 1),
round-robin, each run with a fresh redis-server and fresh chat processes;
the table shows medians, and ratios are medians of each round's own ratio
against ``1 process``.

Skipped, with the reason, when redis-server is not installed or
``python -m reactor chat`` has no ``--redis`` option.
"""

import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import time

from .common import print_table, write_json

from .harness import (
    ROOT, ServerFailed, accepts, cli_server, free_port, medians_or_why, paired,
    process_cpu_seconds, read_until, round_robin, scenario_results, stop)

TWO = "2 processes"
ONE = "1 process"
NO_REDIS = "1 process, no Redis"
MODELS = [TWO, ONE, NO_REDIS]
PAYLOAD = b"m" + b"0123456789abcdef" * 2          # 33 bytes; the line sent is PAYLOAD + \n
IN_FLIGHT = 2000                                  # lines in flight, over all senders
BATCH = 64                                        # lines per send at most
CATCH_UP = 5.0                                    # seconds the receivers get after sending stops


def why_not():
    """None when the suite can run here, else why not."""
    if shutil.which("redis-server") is None:
        return ("redis-server is not installed (Debian: apt install redis-server); "
                "it carries the rooms between the chat processes")
    try:
        shown = subprocess.run([sys.executable, "-m", "reactor", "chat", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return "python -m reactor chat --help did not answer within 60 s"
    if "--redis" not in shown:
        return "python -m reactor chat has no --redis option in this checkout"
    return None


def start_redis():
    """A redis-server on a free port (no persistence); return (process, port)."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--daemonize", "no"],
                               cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise ServerFailed("redis-server did not start on port %d" % port)
        time.sleep(0.05)
    return process, port


class Member:
    """One chat connection of the client: a nick, its socket, what it has counted."""

    def __init__(self, port, nick, wanted):
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_until(self.sock, b"\n")                       # the greeting
        self.sock.sendall(nick + b"\n")
        got = read_until(self.sock, b"* you are " + nick + b",")
        self.rest = got.rsplit(b"\n", 1)[-1]               # a line's start, if any
        self.sock.setblocking(False)
        self.wanted = wanted            # the exact lines counted, one per sender
        self.counts = [0] * len(wanted)
        self.synced = False
        # a sender's side:
        self.queued = 0                 # lines handed to the socket (or waiting in self.out)
        self.out = b""
        self.room = 0                   # lines it may queue now (set by the loop)
        self.mask = selectors.EVENT_READ

    def read(self, sync_line):
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        except ConnectionError:
            data = b""
        if not data:
            raise RuntimeError("the server disconnected %s (see its log: a slow consumer?)"
                               % self.nick.decode())
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for index, line in enumerate(self.wanted):
            self.counts[index] += lines.count(line)
        if not self.synced and sync_line in lines:
            self.synced = True

    def write(self, room):
        """Send what is pending; queue up to ``room`` more lines (at most BATCH) first."""
        if not self.out and room > 0:
            count = min(room, BATCH)
            self.out = (PAYLOAD + b"\n") * count
            self.queued += count
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                sent = 0
            self.out = self.out[sent:]

    def close(self):
        self.sock.close()


class Client:
    """S senders and M receivers in one selectors loop."""

    def __init__(self, send_port, receive_port, senders, receivers, tag):
        sender_nicks = [b"s%d_%d" % (tag, k) for k in range(senders)]
        wanted = [nick + b": " + PAYLOAD for nick in sender_nicks]
        self.sync_line = sender_nicks[0] + b": sync"
        self.window = max(100, IN_FLIGHT // senders)
        self.selector = selectors.DefaultSelector()
        self.receivers, self.senders = [], []
        try:
            for index in range(receivers):
                self.receivers.append(Member(receive_port, b"r%d_%d" % (tag, index), wanted))
            for nick in sender_nicks:
                self.senders.append(Member(send_port, nick, []))
        except BaseException:
            self.close()
            raise
        for member in self.receivers + self.senders:
            self.selector.register(member.sock, selectors.EVENT_READ, member)

    def received(self):
        return sum(sum(member.counts) for member in self.receivers)

    def missing(self):
        """(lines sent that a receiver has not received, lines a receiver received more often
        than they were sent), each summed over receivers and senders; a line not wholly
        handed to the socket is not sent."""
        line, lost, extra = len(PAYLOAD) + 1, 0, 0
        for index, sender in enumerate(self.senders):
            sent = sender.queued - -(-len(sender.out) // line)
            for receiver in self.receivers:
                lost += max(0, sent - receiver.counts[index])
                extra += max(0, receiver.counts[index] - sent)
        return lost, extra

    def pump(self, until, mode):
        """Run the loop until ``until`` (monotonic), or until every line queued has arrived
        when ``mode`` is "flush"; "send" keeps the senders sending, "read" only reads."""
        while True:
            now = time.monotonic()
            if now >= until:
                return
            for index, sender in enumerate(self.senders):
                room = 0
                if mode == "send":
                    slowest = min(receiver.counts[index] for receiver in self.receivers)
                    room = self.window - (sender.queued - slowest)
                mask = selectors.EVENT_READ | (selectors.EVENT_WRITE
                                               if sender.out or room > 0 else 0)
                sender.room = room
                if mask != sender.mask:
                    self.selector.modify(sender.sock, mask, sender)
                    sender.mask = mask
            if mode == "flush" and not self.missing()[0]:
                return
            for key, events in self.selector.select(min(until - now, 0.1)):
                member = key.data
                if events & selectors.EVENT_READ:
                    member.read(self.sync_line)
                if events & selectors.EVENT_WRITE:
                    member.write(member.room)

    def sync(self, timeout=15.0):
        """Send a line from the first sender until every receiver has had one."""
        deadline = time.monotonic() + timeout
        sender = self.senders[0]
        while not all(receiver.synced for receiver in self.receivers):
            if time.monotonic() > deadline:
                raise RuntimeError("no line from the senders reached all the receivers within "
                                   "%g s" % timeout)
            sender.sock.setblocking(True)
            sender.sock.sendall(b"sync\n")
            sender.sock.setblocking(False)
            self.pump(time.monotonic() + 0.1, "read")
        self.pump(time.monotonic() + 0.2, "read")           # the syncs still on their way

    def close(self):
        for member in self.receivers + self.senders:
            member.close()
        self.selector.close()


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def chat_run(model, senders, receivers, warmup, duration, tag=0):
    """One run of ``model`` on fresh servers; return its figures."""
    redis, redis_port = (None, None) if model == NO_REDIS else start_redis()
    try:
        options = ["chat", "--fanout-rate", "0"]
        if redis is not None:
            options += ["--redis", "redis://127.0.0.1:%d" % redis_port]
        with cli_server(options) as first:
            if model == TWO:
                with cli_server(options) as second:
                    return measure(model, [first, second], redis, first.port, second.port,
                                   senders, receivers, warmup, duration, tag)
            return measure(model, [first], redis, first.port, first.port, senders, receivers,
                           warmup, duration, tag)
    finally:
        if redis is not None:
            stop(redis)


def measure(model, servers, redis, send_port, receive_port, senders, receivers, warmup,
            duration, tag):
    client = Client(send_port, receive_port, senders, receivers, tag)
    try:
        client.sync()
        started = time.monotonic()
        client.pump(started + warmup, "send")

        def snapshot():
            return (time.monotonic(), client.received(), sum(s.cpu() for s in servers),
                    process_cpu_seconds(redis.pid) if redis else 0.0, own_cpu_seconds())
        before = snapshot()
        client.pump(before[0] + duration, "send")
        after = snapshot()
        client.pump(time.monotonic() + CATCH_UP, "flush")
        lost, duplicated = client.missing()
    finally:
        client.close()
    seconds, delivered, chat_cpu, redis_cpu, own_cpu = [b - a for a, b in zip(before, after)]
    if delivered == 0:
        raise RuntimeError("no line reached the receivers in the measured window")
    for server in servers:
        server.check_unchanged()
    return {"messages_per_second": delivered / seconds,
            "lines_per_second": delivered / seconds / receivers,
            "chat_cpu_us_per_message": chat_cpu * 1e6 / delivered,
            "redis_cpu_us_per_message": redis_cpu * 1e6 / delivered,
            "chat_cores": chat_cpu / seconds, "client_busy": own_cpu / seconds,
            "lost": lost, "duplicated": duplicated, "processes": len(servers)}


def print_chat_table(label, runs, status, senders, receivers):
    rows, medians, notes = [], {}, []
    for model in MODELS:
        cell, why = medians_or_why(runs, status, (label, model), notes)
        if cell is None:
            rows.append([model, why] + [""] * 7)
            continue
        medians[model] = cell
        ratio = paired(runs[label, model], runs.get((label, ONE), ()), "messages_per_second")
        rows.append([model, "%.0f" % cell["messages_per_second"],
                     "%.0f" % cell["lines_per_second"],
                     "n/a" if ratio is None else "%.2fx" % ratio,
                     "%.1f" % cell["chat_cpu_us_per_message"],
                     "-" if model == NO_REDIS else "%.1f" % cell["redis_cpu_us_per_message"],
                     "%.2f" % cell["chat_cores"], "%.0f%%" % (100 * cell["client_busy"]),
                     "%d / %d" % (cell["lost"], cell["duplicated"])])
    print_table("chat fan-out, %s: %d sender(s) -> %d receivers in #lobby, %d-byte lines, "
                "--fanout-rate 0" % (label, senders, receivers, len(PAYLOAD)),
                ["model", "msgs/s delivered", "lines/s sent", "vs 1 process", "chat us/msg",
                 "redis us/msg", "chat cores", "client busy", "lost / dup"], rows,
                ["msgs/s delivered: lines counted at all the receivers (each exactly "
                 "'NICK: payload'), per second; lines/s sent = that / %d receivers" % receivers,
                 "2 processes: senders on A, receivers on B, every line through Redis pub/sub; "
                 "1 process: all on A (with --redis)",
                 "vs 1 process: median of each round's own ratio of msgs/s",
                 "chat us/msg, redis us/msg: CPU (/proc) per delivered message; chat cores: the "
                 "chat processes' CPU seconds per second",
                 "client busy near 100%%: this Python client, not the servers, set the rate; "
                 "lost: lines a receiver still lacked %g s after sending stopped; dup: lines it "
                 "got more often than they were sent" % CATCH_UP,
                 "--fanout-rate 0: chat's per-member delivery budget is off; at most %d lines "
                 "in flight per sender" % max(100, IN_FLIGHT // senders),
                 "on a 2-core machine (this one has %s) the client, redis-server and the chat "
                 "processes share the cores" % (os.cpu_count() or "?")] + notes)
    return medians


def option(extra, name, default):
    """The positive int after ``name`` in ``extra`` (``default`` when absent)."""
    if name not in extra:
        return default
    value = int(extra[extra.index(name) + 1])
    if value < 1:
        raise ValueError(name)
    return value


def main(args, extra):
    usage = ("usage: python -m benchmarks chat-redis [--receivers M] [--senders S] [--quick] "
             "[--repeat R] [--json FILE]")
    try:
        receivers = option(extra, "--receivers", 20)
        senders = option(extra, "--senders", 1)
    except (IndexError, ValueError):
        print("--receivers and --senders take a positive count")
        print(usage)
        return 2
    if not os.path.exists("/proc/self/stat"):
        print("chat-redis skipped: it reads the servers' CPU time from /proc; "
              "this platform has none")
        return 0
    reason = why_not()
    if reason:
        print("chat-redis skipped: %s" % reason)
        if args.json:
            write_json(args.json, "chat-redis", [{"status": "skipped: " + reason}])
        return 0
    repeat = args.repeat or (1 if args.quick else 3)
    warmup, duration = (0.5, 2.0) if args.quick else (1.0, 5.0)
    label = "lobby"
    print("chat-redis: %d sender(s) -> %d receivers in #lobby, chat with --fanout-rate 0 "
          "(its delivery budget off); %d round(s) (median), %.0f s each after a %.1f s "
          "warm-up" % (senders, receivers, repeat, duration, warmup), flush=True)
    runs = {(label, model): [] for model in MODELS}
    status = {}
    tags = iter(range(1, 1 << 30))

    def one(label, model):
        run = chat_run(model, senders, receivers, warmup, duration, next(tags))
        return run, "%9.0f msgs/s  %6.1f chat us/msg  %d lost  %d dup" % (
            run["messages_per_second"], run["chat_cpu_us_per_message"], run["lost"],
            run["duplicated"])
    round_robin(runs, status, repeat, one, ServerFailed)
    medians = print_chat_table(label, runs, status, senders, receivers)
    if args.json:
        write_json(args.json, "chat-redis", scenario_results(label, MODELS, medians, runs,
                                                             status))
    return 0

"""The benchmark harness: start, prime, measure and stop a server; repeat round-robin; take medians.

Every suite (``echo.py``, ``web.py``, ``websocket.py`` ...) is written on
this module and ``common.py`` (environment, tables, JSON); suites never
import each other. A measurement has one shape everywhere::

    server = start it on a free port (a model from ``models/``, or reactor's CLI)
    prime it        one connection opened, used and closed before measuring
    load generator  with LOADGEN_HOLD: it prints "measuring" when its window opens,
                    one JSON line when it closes, then holds its connections
    server CPU      read from /proc at those two lines: exactly the window
    stop it         SIGTERM, SIGKILL after a while

and ``round_robin`` runs each (scenario, model) once a round, ``repeat``
rounds in turn, so a slow drift of the machine spreads over every model
alike; ``medians_or_why`` takes the medians, or says why there are none,
and ``paired`` the median of each round's own ratio.

Load generators live in ``loadgen/`` (C, compiled on first use by
``build_loadgen``; ``pyloadgen.py`` stands in without a compiler).
"""

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from .common import compile_tool, print_table, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOADGEN_DIR = os.path.join(HERE, "loadgen")
SINGLE = "1 process"
STARTED = re.compile(r"worker (\d+) started \(pid (\d+), generation (\d+)\)")
ACCEPTING = re.compile(r"worker (\d+) \(pid (\d+)\) is accepting")


def build_loadgen(name="loadgen", libraries=()):
    """Compile ``loadgen/NAME.c`` once; return its path, or None without a C compiler."""
    return compile_tool(os.path.join(LOADGEN_DIR, name + ".c"), libraries)


# -- ports and processes ---------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(core, command):
    """Prefix ``command`` with taskset to run it on ``core``, when that is possible."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)] + command
    return command


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def process_cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parent_pids():
    """{pid: its parent's pid} for every process, from /proc/PID/stat."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue                    # it exited while we looked
        parents[int(entry)] = int(fields[1])
    return parents


def process_tree(pid):
    """``pid`` and all its descendants, sorted (children of children included)."""
    parents = parent_pids()
    tree, frontier = {pid}, [pid]
    while frontier:
        frontier = [child for child, parent in parents.items()
                    if parent in frontier and child not in tree]
        tree.update(frontier)
    return sorted(tree)


def tree_cpu_seconds(pids):
    """The CPU seconds of ``pids`` summed; ProcessLookupError if one has exited."""
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_seconds(pid)
        except FileNotFoundError:
            raise ProcessLookupError("process %d exited during the run" % pid) from None
    return total


def stop(process):
    """SIGTERM (the server drains, then exits); SIGKILL if it is still there after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log):
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# -- servers under test ------------------------------------------------------------------

def start_server(model, port, *extra, timeout=30):
    """Start ``python -m benchmarks.models model port *extra``; return it once it says
    "ready". RuntimeError, with its stderr, if it does not within ``timeout`` seconds (a
    model that cannot run here exits at once, saying why)."""
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.models", model, str(port)]
                               + list(extra), cwd=os.path.dirname(HERE),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timed_out = not select.select([process.stdout], [], [], timeout)[0]
    line = "" if timed_out else process.stdout.readline().strip()
    if line != "ready":
        for pid in reversed(process_tree(process.pid)):       # children first: prefork's
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            errors = process.communicate(timeout=10)[1].strip()
        except subprocess.TimeoutExpired:
            errors = ""
        said = " within %d s" % timeout if timed_out else " (it said %r)" % line if line else ""
        raise RuntimeError("%s server did not start%s: %s" % (
            model, said, errors.splitlines()[-1] if errors else "exit %s" % process.returncode))
    return process


def prime(port, preamble=b""):
    """Open, use and close one connection before measuring.

    A fresh CPython server whose reads allocate large buffers (asyncio reads
    256 KiB at a time) pays glibc mmap/munmap on every read until a first
    connection closes and glibc raises its mmap threshold; a real server is
    long past that point, so every model is primed the same way.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(preamble + b"prime" * 13000)
        received = 0
        while received < 5 * 13000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
    time.sleep(0.05)


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


class StartFailed(Exception):
    """The server exited, or never accepted: not worth another round."""


@contextlib.contextmanager
def serving(model, root=None, idle=False, protocol="http"):
    """Run ``model``'s ``protocol`` server (``python -m benchmarks.models model port
    --protocol protocol``; ``root`` makes it http-static) on core 0 until the block ends;
    yield (process, port) once the port accepts."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.models", model, str(port),
               "--protocol", protocol]
    command += (["--root", root] if root else []) + (["--measure-idle"] if idle else [])
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(pinned(0, command), cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE if idle else subprocess.DEVNULL,
                                   stderr=log, text=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
                    raise StartFailed(lines[-1] if lines else "exit %d" % process.returncode)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise StartFailed("did not accept connections within 20 s")
                    time.sleep(0.05)
            yield process, port
        finally:
            stop(process)
            if process.stdout:
                process.stdout.close()


class ServerFailed(Exception):
    """The server exited, or never became ready: not worth another round."""


def model_name(workers):
    return SINGLE if workers is None else "--workers %d" % workers


class CliServer:
    """A running ``python -m reactor ...``: its port, the pids whose CPU is counted."""

    def __init__(self, process, port, pids, log):
        self.process, self.port, self.pids, self.log = process, port, pids, log

    def cpu(self):
        """CPU seconds of the supervisor and every worker (or of the single process)."""
        return tree_cpu_seconds(self.pids)

    def check_unchanged(self):
        """Fail the run if a worker exited or was replaced since the server was ready."""
        now = process_tree(self.process.pid)
        if now != self.pids:
            raise RuntimeError("the server's processes changed during the run (%s, then %s): "
                               "a worker exited or restarted" % (self.pids, now))


@contextlib.contextmanager
def cli_server(arguments, workers=None, port=None, ready_timeout=20):
    """Run ``python -m reactor SUBCOMMAND ... --port P`` (``arguments`` from the subcommand
    on), with ``--workers workers`` unless it is None, until the block ends; yield a
    CliServer once every worker says it is accepting and the port accepts."""
    port = port or free_port()
    command = [sys.executable, "-m", "reactor", "--log-level", "INFO"] + list(arguments)
    command += ["--port", str(port), "--grace", "1"]
    if workers is not None:
        command += ["--workers", str(workers)]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                if process.poll() is not None:
                    raise ServerFailed("%s exited (%d): %s" % (model_name(workers),
                                                             process.returncode, log_tail(log)))
                log.seek(0)
                text = log.read()
                ready = workers is None or len(set(ACCEPTING.findall(text))) >= workers
                if ready and accepts(port):
                    break
                if time.monotonic() > deadline:
                    raise ServerFailed("%s was not ready within %d s: %s"
                                       % (model_name(workers), ready_timeout, log_tail(log)))
                time.sleep(0.05)
            pids = process_tree(process.pid)
            if workers is not None:
                logged = sorted({int(pid) for _, pid, _ in STARTED.findall(text)})
                if sorted(set(pids) - {process.pid}) != logged or len(logged) != workers:
                    raise ServerFailed("--workers %d: the log names workers %s, the process "
                                       "tree is %s" % (workers, logged, pids))
            yield CliServer(process, port, pids, log)
        finally:
            stop(process)


# -- load ----------------------------------------------------------------------------------

def release_loadgen(client):
    """End a held load generator: close its stdin (it exits), wait, kill it after 60 s."""
    client.stdin.close()
    try:
        client.wait(timeout=60)
    except subprocess.TimeoutExpired:
        client.kill()
        client.wait()
    client.stdout.close()


def run_held(command, server_cpu, name):
    """Run ``command``, a load generator, with LOADGEN_HOLD set: it prints "measuring" when
    its window opens, then one JSON line, then holds its connections until its stdin closes.
    Return that JSON and how much ``server_cpu()`` (seconds) grew between the two lines."""
    client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, LOADGEN_HOLD="1"))
    try:
        opened = client.stdout.readline()
        cpu_before = server_cpu()
        output = client.stdout.readline()
        cpu_after = server_cpu()
    finally:
        release_loadgen(client)
    if opened.strip() != "measuring" or not output:
        raise RuntimeError("%s stopped early (exit %s)" % (name, client.returncode))
    return json.loads(output), cpu_after - cpu_before


def measure(model, command, warmup, duration, before=None, env=None):
    """Run ``command`` (a load generator printing JSON) against a fresh ``model`` server.

    ``before(port)`` primes the server first. The load generator runs with
    LOADGEN_HOLD set: it prints "measuring" when its window opens (after
    its connects and warm-up) and holds its connections after printing its
    JSON until its stdin closes, so the server's CPU time, read from /proc
    at those two lines, covers exactly the measured window (the CPU of the
    server's whole process tree: prefork's and reactor-workers' children
    count). Returns the
    load generator's JSON and those server CPU seconds; the command's
    "{port}" is replaced by the server's port.
    """
    port = free_port()
    server = start_server(model, port)
    client = None
    try:
        if before is not None:
            before(port)
        pids = process_tree(server.pid)     # a multi-process model: its children count too
        client = subprocess.Popen([part.replace("{port}", str(port)) for part in command],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=dict(env or os.environ, LOADGEN_HOLD="1"))
        watchdog = threading.Timer(warmup + duration + 120, client.kill)
        watchdog.start()
        try:
            opened = client.stdout.readline()
            cpu_before = tree_cpu_seconds(pids)
            output = client.stdout.readline()
            cpu_after = tree_cpu_seconds(pids)
        finally:
            watchdog.cancel()
        if opened.strip() != "measuring" or not output:
            raise RuntimeError("the load generator against %s stopped early (exit %s): %r %r"
                               % (model, client.poll(), opened, output))
    finally:
        if client is not None:
            release_loadgen(client)
        stop_server(server)
    return json.loads(output), cpu_after - cpu_before


def one_run(model, scenario, loadgen, warmup, duration, framing="raw", preamble=b""):
    """Measure one scenario on a fresh server; ``preamble`` (a token line) opens each connection."""
    conns, size, pipeline = scenario
    command = ([loadgen] if loadgen else [sys.executable, os.path.join(LOADGEN_DIR, "pyloadgen.py")])
    command += ["127.0.0.1", "{port}", str(conns), str(size), str(pipeline),
                str(warmup), str(duration), framing]
    if framing == "raw":
        before = lambda port: prime(port, preamble + b"\n" if preamble else b"")  # noqa: E731
    else:
        before = lambda port: time.sleep(0.05)                                  # noqa: E731
    env = dict(os.environ, LOADGEN_PREAMBLE=preamble.decode()) if preamble else None
    result, cpu_seconds = measure(model, command, warmup, duration, before, env)
    requests = max(result["requests"], 1)
    return {
        "requests_per_second": result["requests"] / result["seconds"],
        "p50_us": result["p50_us"], "p99_us": result["p99_us"],
        "p90_us": result["p90_us"], "p999_us": result["p999_us"],
        "server_cpu_us_per_request": cpu_seconds * 1e6 / requests,
        "loadgen_busy": result["cpu_seconds"] / result["seconds"],
        "errors": result["errors"],
        "lost": result.get("lost", 0),
    }


#: Beyond one fd per connection, what each process needs (listener, epoll,
#: pipes, stdio, imported modules).
FD_MARGIN = 100


def fd_limit_problem(connections):
    """Fit ``connections`` in this process's fd limit, raising the soft limit
    (the servers and load generator we start inherit it) up to the hard one.

    The server and the load generator are separate processes, each holding
    one fd per connection, so each needs ``connections + FD_MARGIN``.
    Returns None when that fits, else a sentence on what to change.
    """
    import resource
    needed = connections + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return None
    return ("%s connections need an open-file limit of at least %s in each process (the "
            "server and the load generator each hold one fd per connection, plus %d of their "
            "own); this shell allows %s and at most %s. Raise the hard limit (as root, or in "
            "/etc/security/limits.conf), run `ulimit -n %d`, or ask for fewer connections."
            % ("{:,}".format(connections), "{:,}".format(needed), FD_MARGIN,
               "{:,}".format(soft), "{:,}".format(hard), needed))


def read_until(sock, marker):
    """Receive from ``sock`` until ``marker`` has come; return all that came."""
    received = b""
    while marker not in received:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed the connection before %r" % marker)
        received += chunk
    return received


# -- repeats, medians, ratios ---------------------------------------------------------------

def round_robin(runs, status, repeat, measure, fatal=()):
    """Run each (scenario, model) job of ``runs`` once a round, ``repeat`` rounds, in turn.

    ``runs`` maps each job to the list its runs are appended to (None for a
    failed one); ``measure(scenario, model)`` returns (run, a line to print).
    An exception is reported, not raised, so the rest still run. A job in
    ``status`` is not run; a failure goes into ``status`` (and is not
    retried) when it is one of ``fatal`` or the job's first.
    """
    width = max([len(scenario) for scenario, _ in runs] or [0])
    for round_number in range(repeat):
        for (scenario, model), done in runs.items():
            if (scenario, model) in status:
                done.append(None)
                continue
            try:
                run, line = measure(scenario, model)
            except Exception as exc:
                run, line = None, "failed: %s" % (str(exc) or type(exc).__name__)
                if isinstance(exc, fatal) or not any(done):
                    status[scenario, model] = line
            done.append(run)
            print("  round %d  %-*s %-18s %s" % (round_number + 1, width, scenario, model, line),
                  flush=True)


def medians_or_why(runs, status, job, notes):
    """(the median of each figure over ``runs[job]``'s runs that worked, None), or, when
    none did, (None, why): its ``status``, "failed (below)" with the failure added to
    ``notes``, or "not run"."""
    good = [run for run in runs.get(job, ()) if run]
    if good:
        return {key: statistics.median(run[key] for run in good) for key in good[0]}, None
    why = status.get(job, "not run")
    if why.startswith("failed"):
        notes.append("%s %s" % (job[1], why))
        why = "failed (below)"
    return None, why


def scenario_results(scenario, models, medians, runs, status):
    """The JSON results of one scenario: each model's medians, status and runs."""
    return [dict(medians.get(model, {}), scenario=scenario, model=model,
                 status=status.get((scenario, model), "ok"), runs=runs.get((scenario, model), []))
            for model in models]


def paired(numerator, denominator, key="requests_per_second"):
    """Median over rounds of ``key`` in ``numerator`` / ``denominator`` (runs per round, None
    where one failed), over the rounds where both ran; None when there is none."""
    ratios = [a[key] / b[key] for a, b in zip(numerator, denominator) if a and b and b[key]]
    return statistics.median(ratios) if ratios else None


# -- idle memory and targets ----------------------------------------------------------------

def idle_heap(model, count, open_batch, protocol, check_server):
    """Python heap bytes per idle connection of ``model``'s ``protocol`` server, as
    ``open_batch(port, size, clients)`` opens them (default: HTTP keep-alive connections,
    each having had one response), after ``check_server(port)``."""
    with serving(model, idle=True, protocol=protocol) as (server, port):
        def heap():
            server.send_signal(signal.SIGUSR1)
            return int(server.stdout.readline().split()[1])
        check_server(port)
        before = heap()
        clients = []
        try:
            while len(clients) < count:
                open_batch(port, min(500, count - len(clients)), clients)
            return (heap() - before) / count
        finally:
            for sock in clients:
                sock.close()


def idle_heap_table(what, models, count, results, **options):
    """Print the heap per idle ``what`` of each of ``models`` (``idle_heap`` with
    ``options``), add them to ``results`` and return them ({model: bytes})."""
    heap_rows, heap = [], {}
    problem = fd_limit_problem(count)
    for model in models:
        try:
            heap[model] = value = None if problem else idle_heap(model, count, **options)
            heap_rows.append([model, problem or "%.0f B" % value])
        except Exception as exc:
            heap_rows.append([model, "failed: %s" % (str(exc) or type(exc).__name__)])
        results.append({"scenario": "idle heap", "model": model, "connections": count,
                        "heap_bytes_per_connection": heap.get(model), "detail": heap_rows[-1][1]})
    print_table("Python heap per idle %s (%s connections, tracemalloc)"
                % (what, "{:,}".format(count)), ["model", "heap per connection"], heap_rows)
    return heap


def heap_target(value, what, rows, results):
    """Add the target "heap <= 4 KiB per idle ``what``" for ``value`` bytes to ``rows``
    (of the targets table) and ``results``."""
    rows.append(["heap <= 4 KiB per idle %s" % what,
                 "n/a" if value is None else "%.0f B" % value, verdict(value, 4096, at_most=True)])
    results.append({"target": rows[-1][0], "bytes": value, "verdict": rows[-1][2]})


def ratio_targets(targets, runs, results, key="requests_per_second"):
    """Rows of the targets table for ``targets``: (what, reactor's scenario, the other
    (scenario, model), least ratio of ``key``); each is added to ``results`` too."""
    rows = []
    for text, mine, other, target in targets:
        ratio = paired(runs.get((mine, "reactor"), ()), runs.get(other, ()), key)
        rows.append([text, "n/a" if ratio is None else "%.2fx" % ratio, verdict(ratio, target)])
        results.append({"target": text, "ratio": ratio, "verdict": rows[-1][2]})
    return rows


def print_targets(title, rows, results, json_path, suite):
    """Print the targets table; write ``results`` to ``json_path`` when given; return 0."""
    print_table(title, ["target", "measured", "verdict"], rows,
                ["n/a: a model it needs was skipped or failed (see the tables above)"])
    if json_path:
        write_json(json_path, suite, results)
    return 0


def verdict(value, target, at_most=False):
    if value is None:
        return "n/a"
    return "met" if (value <= target if at_most else value >= target) else "missed"

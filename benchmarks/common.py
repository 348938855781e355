"""Shared benchmark helpers: medians, environment, tables and JSON output."""

import gc
import json
import os
import platform
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def environment():
    """Describe the machine and interpreter, recorded with every result."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "selector": selectors.DefaultSelector.__name__,
    }


def median_seconds(run, repeat):
    """Call ``run()`` ``repeat`` times after a gc.collect() each; return the median seconds.

    ``run`` returns the seconds it measured itself, so setup stays outside
    the timed region.
    """
    samples = []
    for _ in range(repeat):
        gc.collect()
        samples.append(run())
    return statistics.median(samples), samples


def timed(fn):
    """Return the wall seconds ``fn()`` took."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def print_table(title, header, rows, notes=()):
    """Print rows as an aligned text table."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print()
    print(title)
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))
    for note in notes:
        print("  " + note)


def write_json(path, suite, results):
    """Write ``results`` with the environment to ``path``."""
    with open(path, "w") as handle:
        json.dump({"suite": suite, "environment": environment(), "results": results},
                  handle, indent=2)
    print("\nraw results written to %s" % path)


def rate(count, seconds):
    """Format a rate in operations per second with a unit prefix."""
    value = count / seconds if seconds > 0 else float("inf")
    for unit, scale in (("M/s", 1e6), ("k/s", 1e3)):
        if value >= scale:
            return "%.2f %s" % (value / scale, unit)
    return "%.1f /s" % value


def compile_tool(source, libraries=()):
    """Compile a C load generator once into a cache folder; return its path.

    Returns None when there is no C compiler, or the build fails (missing
    headers), so the caller can say why it skips.
    """
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return None
    name = os.path.splitext(os.path.basename(source))[0]
    cache = os.path.join(tempfile.gettempdir(), "reactor-bench")
    os.makedirs(cache, exist_ok=True)
    binary = os.path.join(cache, "%s-%d" % (name, int(os.stat(source).st_mtime)))
    if not os.path.exists(binary):
        result = subprocess.run([compiler, "-O2", "-o", binary, source] + list(libraries),
                                capture_output=True, text=True)
        if result.returncode != 0:
            return None
    return binary


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


def read_until(sock, marker):
    """Receive from ``sock`` until ``marker`` has come; return all that came."""
    received = b""
    while marker not in received:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed the connection before %r" % marker)
        received += chunk
    return received

"""``python -m benchmarks all [--quick] [--report DIR]``: every suite in one run, and its report.

Each suite runs in its own process (``python -m benchmarks SUITE --json
FILE``), one after another, so a suite that crashes costs only its own
row, and no suite's imports or threads linger into the next. Meanwhile the
terminal shows which suite and model is measuring and an estimate of the
time left; each suite's full output goes to ``DIR/logs/SUITE.txt``. At the
end the suites' JSON is merged into one ``results.json`` (the format is in
``report/schema.py``) and ``report/document.py`` draws ``report.md`` and
its SVG charts.

The plans below say what runs. ``--quick`` (about 3 minutes on 2 cores)
keeps four suites, one round each: echo, scaling and http, where a reader
compares concurrency models, and loop, the reactor's own costs. The full run (under 30 minutes) adds every
other comparison suite with three rounds; ``attacks`` is not a comparison
and is left out. The estimates are this 2-core machine's, for the
progress line only.
"""

import json
import math
import os
import platform
import resource
import selectors
import shutil
import subprocess
import sys
import tempfile
import time

from .harness import ROOT
from .report import SCHEMA_VERSION, validate, write_report
from .report.schema import from_suite_json

#: (suite, its extra arguments, estimated seconds)
QUICK_PLAN = [
    ("echo", ["--quick", "--seconds", "1.5"], 90),
    ("scaling", ["--quick"], 30),
    ("http", ["--quick"], 55),
    ("loop", ["--quick"], 15),
]
FULL_PLAN = [
    ("echo", ["--quick", "--repeat", "3"], 325),
    ("scaling", ["--repeat", "1"], 600),
    ("http", ["--quick", "--repeat", "3"], 140),
    ("websocket", ["--quick", "--repeat", "3"], 130),
    ("loop", ["--quick"], 60),
    ("framing", ["--quick", "--repeat", "3"], 90),
    ("udp", ["--quick", "--repeat", "3"], 60),
    ("tls", ["--quick", "--repeat", "3"], 90),
    ("protected", ["--quick"], 60),
    ("resp", ["--quick"], 90),
    ("chat-redis", ["--quick", "--repeat", "3"], 60),
]
TITLES = {
    "echo": "TCP echo", "scaling": "Scaling with connections", "http": "HTTP/1.1 keep-alive",
    "websocket": "WebSocket", "loop": "The loop: timers, callbacks, idle fds",
    "framing": "Framing", "udp": "UDP echo", "tls": "TLS echo and handshakes",
    "protected": "Protections on vs off", "resp": "RESP (kv vs redis-server)",
    "chat-redis": "Chat fan-out through Redis",
}
#: A load generator at least this busy set the rate itself (the report says where).
SATURATED = 0.9


def main(args, extra):
    """Run the plan, print progress, write the report; return 0 (1 if every suite failed)."""
    directory = extra[extra.index("--report") + 1] if "--report" in extra[:-1] else "report"
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    os.makedirs(os.path.join(directory, "logs"), exist_ok=True)
    started, began = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.monotonic()
    print("benchmarks all%s: %d suites, about %s; report in %s/"
          % (" --quick" if args.quick else "", len(plan), clock(sum(p[2] for p in plan)),
             directory), flush=True)
    suites = {}
    for number, (suite, arguments, estimate) in enumerate(plan, 1):
        left = sum(p[2] for p in plan[number:])
        suites[suite] = run_suite(suite, arguments, estimate, left, number, len(plan), directory)
    results = {
        "schema": SCHEMA_VERSION, "generator": "python -m benchmarks all",
        "started": started, "seconds": round(time.monotonic() - began, 1),
        "quick": bool(args.quick), "environment": environment(suites), "suites": suites,
    }
    validate(results)
    paths = write_report(results, directory)
    print("\nwrote %s" % ", ".join(paths[:3] + (["%d charts" % (len(paths) - 3)]
                                                  if len(paths) > 3 else [])))
    failed = [name for name, suite in suites.items() if suite["status"].startswith("failed")]
    if failed:
        print("failed: %s (see %s/logs/)" % (", ".join(failed), directory))
    return 1 if len(failed) == len(plan) else 0


def run_suite(suite, arguments, estimate, left_after, number, total, directory):
    """Run one suite in a child process; return its entry of results.json."""
    handle, json_path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    log_path = os.path.join(directory, "logs", suite + ".txt")
    command = [sys.executable, "-m", "benchmarks", suite] + arguments + ["--json", json_path]
    began = time.monotonic()
    last = ""
    try:
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
            for line in process.stdout:
                log.write(line)
                if line.strip():
                    last = line.strip()
                if line.startswith("  ") and line.strip():    # a suite's per-run line
                    elapsed = time.monotonic() - began
                    progress("[%d/%d] %-10s ~%s left  %s" % (
                        number, total, suite, clock(max(estimate - elapsed, 0) + left_after),
                        " ".join(line.split())[:70]))
            code = process.wait()
        seconds = round(time.monotonic() - began, 1)
        rows = []
        if os.path.getsize(json_path):
            with open(json_path) as handle:          # every row gets a scenario and a model
                rows = from_suite_json(json.load(handle), suite)["suites"][suite]["results"]
    finally:
        os.unlink(json_path)
    if code != 0:
        status = "failed: exit %d: %s (logs/%s.txt)" % (code, last[:120], suite)
    elif not rows:
        status = "skipped: %s" % last[:160]
    else:
        status = "ok"
    progress("[%d/%d] %-10s %s in %s" % (number, total, suite, status.split(":")[0],
                                          clock(seconds)), end="\n")
    return {"title": TITLES.get(suite, suite), "status": status, "seconds": seconds,
            "results": [clean(row) for row in rows]}


def clean(row):
    """A suite's row as results.json keeps it: text fields, numbers, and the runs."""
    kept = {}
    for key, value in row.items():
        if key == "status" and isinstance(value, str):
            # a suite's own words ("n/a: fixed reply only") become a skip with that reason
            kept[key] = value if value == "ok" or value.startswith(("skipped: ", "failed: ")) \
                else "skipped: " + value
        elif key in ("scenario", "model", "detail", "program", "loop") and isinstance(value, str):
            kept[key] = value
        elif key == "runs" and isinstance(value, list):
            kept[key] = [{k: v for k, v in run.items() if is_number(v) and math.isfinite(v)}
                         for run in value if isinstance(run, dict)]
        elif is_number(value):
            kept[key] = value if math.isfinite(value) else None     # strict JSON has no NaN
        elif value is None:
            kept[key] = None
    return kept


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def environment(suites):
    """The report's environment header: machine, interpreter, load generators, saturation."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    wrk = shutil.which("wrk")
    compiler = shutil.which("gcc") or shutil.which("cc")
    c_or_python = "loadgen.c (C, epoll)" if compiler else "pyloadgen.py (Python stand-in)"
    saturated = ["%s / %s / %s" % (name, row["scenario"], row["model"])
                 for name, suite in suites.items() for row in suite["results"]
                 if (row.get("loadgen_busy") or 0) >= SATURATED]
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "platform": platform.platform(), "selector": selectors.DefaultSelector.__name__,
        "ulimit_n": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "loadgens": {"echo, scaling, framing, udp, protected": c_or_python,
                     "http": "wrk -t1" if wrk else "httploadgen.c (C, epoll)",
                     "websocket": "wsloadgen.c (C, epoll)", "tls": "tlsloadgen.c (C, OpenSSL)",
                     "resp": "redis-benchmark"},
        "loadgen_saturated": saturated,
    }


def clock(seconds):
    seconds = int(round(seconds))
    return "%d:%02d" % (seconds // 60, seconds % 60)


def progress(text, end=""):
    """One progress line: rewritten in place on a terminal, one line each elsewhere."""
    if sys.stdout.isatty():
        print("\r\033[K" + text, end=end, flush=True)
    else:
        print(text, flush=True)

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


def unknown_models(suite, wanted, models):
    """Return None, or the line saying which of ``wanted`` (``--models A,B``) ``suite`` lacks."""
    unknown = [m for m in wanted if m not in models]
    if not unknown:
        return None
    return ("%s: no %s model named %s (python -m benchmarks.models lists them)"
            % (suite, suite, ", ".join(unknown)))


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



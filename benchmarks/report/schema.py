"""The format of ``results.json``, written by ``python -m benchmarks all``.

Version 1. One JSON object; every key below is required unless marked
optional. Unknown keys are kept and ignored, so a newer runner may add
fields without a version bump; removing or renaming one bumps
``SCHEMA_VERSION``, and ``python -m benchmarks compare`` refuses to compare
files of different versions::

    {
      "schema": 1,                          # this format's version (int)
      "generator": "python -m benchmarks all --quick",   # the command that ran
      "started": "2026-11-30T20:00:00Z",    # UTC, ISO 8601
      "seconds": 123.4,                     # wall time of the whole run
      "quick": true,                        # --quick sizes?
      "environment": {                      # every key optional; the report says "not recorded"
        "cpu": "Intel(R) Xeon(R) ...",      # model name from /proc/cpuinfo
        "cores": 2,                         # os.cpu_count()
        "kernel": "6.1.0",                  # platform.release()
        "python": "3.11.7",
        "implementation": "CPython",
        "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
        "selector": "EpollSelector",        # selectors.DefaultSelector
        "ulimit_n": 20000,                  # soft RLIMIT_NOFILE during the run (int or null)
        "loadgens": {"echo": "loadgen.c (C, epoll)", "http": "wrk 4.2.0"},   # suite -> generator
        "loadgen_saturated": ["echo / 100 conn x 64 B / reactor"]   # cells where the load
                                            # generator was the bottleneck ("suite / scenario /
                                            # model"); [] when none was; absent: the report
                                            # derives it from rows with loadgen_busy >= 0.9
      },
      "suites": {                           # suite name -> one suite; names as in
        "echo": {                           # `python -m benchmarks` (may be empty: {})
          "title": "TCP echo",
          "status": "ok",                   # or "skipped: <reason>" or "failed: <reason>"
          "seconds": 40.2,                  # optional: wall time of this suite
          "results": [ROW, ...]             # possibly [] when skipped or failed
        }
      }
    }

A ROW is one cell: one model in one scenario, as a suite writes it with
``--json``::

    {"scenario": "100 conn x 64 B ping-pong",   # required, str
     "model": "reactor",                        # required, str
     "status": "ok",                            # optional: "ok", "skipped: <reason>",
                                                #   "failed: <reason>"; absent means ok
     "requests_per_second": 119772.0,           # metrics: numbers or null
     "server_cpu_us_per_request": 8.3,
     "p50_us": 760, "p90_us": 1200, "p99_us": 1559, "p999_us": 2100,
     "loadgen_busy": 0.99, "errors": 0, "connections": 100,
     "program": "asyncio Protocol echo",        # optional, both or neither: the asyncio
     "loop": "reactor.aio",                     #   program this row runs, on which loop
                                                #   ("asyncio", "reactor.aio", "uvloop")
     "runs": [{...}, ...]}                      # optional, per-run dicts; charts ignore it

Metrics. Keys named like a metric must hold a finite number (int or float,
not a boolean) or null (not measured); NaN and infinities are refused, as
strict JSON has no spelling for them (write null). A key is named like a
metric when it is one of ``METRICS`` below (``requests_per_second``,
``messages_per_second``, ``server_cpu_us_per_request``, ``p50_us``,
``p90_us``, ``p99_us``, ``p999_us``, ``loadgen_busy``, ``errors``, ``lost``,
``connections``, ``heap_bytes_per_connection``,
``rss_bytes_per_connection``), or ends in ``_per_second``, ``_us`` or
``_bytes``, or contains ``_us_per_`` or ``_bytes_per_``. Any other numeric key
is kept as a metric too (``compare`` compares it, without knowing which way
is better). Other keys may hold any JSON value (strings such as
``"detail"``, lists such as ``"samples"``) and are shown in the raw tables
when they are scalars.

Units are in the names: ``_us`` microseconds, ``_bytes`` bytes,
``_per_second`` per second; ``loadgen_busy`` is the load generator's CPU
share, 0..1 (>= 0.9: it, not the server, set the rate).

The scaling suite (``"scaling"``) writes one row per model and connection
count (``connections`` 1, 10, 100, 1000, 10000) with
``requests_per_second`` and ``p99_us``; a count that could not run (open
files limit) is a row with ``"status": "skipped: <reason>"``.
"""

import json
import math
import numbers

SCHEMA_VERSION = 1

#: metric -> (what it is, unit, direction): +1 higher is better, -1 lower is
#: better, 0 informational (a parameter, or a measure of the measurement).
METRICS = {
    "requests_per_second": ("requests/s", "req/s", +1),
    "messages_per_second": ("messages/s", "msg/s", +1),
    "server_cpu_us_per_request": ("server CPU per request", "µs", -1),
    "p50_us": ("p50 latency", "µs", -1),
    "p90_us": ("p90 latency", "µs", -1),
    "p99_us": ("p99 latency", "µs", -1),
    "p999_us": ("p99.9 latency", "µs", -1),
    "loadgen_busy": ("load generator busy", "share of a core", 0),
    "errors": ("errors", "count", -1),
    "lost": ("lost", "count", -1),
    "connections": ("connections", "count", 0),
    "heap_bytes_per_connection": ("Python heap per idle connection", "bytes", -1),
    "rss_bytes_per_connection": ("RSS per idle connection", "bytes", -1),
}

#: Keys of a row that are not metrics even when numeric-looking.
ROW_TEXT_KEYS = ("scenario", "model", "status")


def looks_like_metric(key):
    """True if ``key`` is named like a metric (see the module docstring)."""
    return (key in METRICS or key.endswith(("_per_second", "_us", "_bytes"))
            or "_us_per_" in key or "_bytes_per_" in key)


def is_number(value):
    """True for an int or float that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def metric_keys(row):
    """The metrics of ``row`` in a stable order: ``METRICS`` order, then the rest sorted.

    A metric is a key named like one, or any other key holding a number;
    ``runs`` and lists are never metrics.
    """
    keys = [key for key in row if key not in ROW_TEXT_KEYS and key != "runs"
            and (looks_like_metric(key) or is_number(row[key]))]
    known = [key for key in METRICS if key in keys]
    return known + sorted(key for key in keys if key not in METRICS)


def direction(metric):
    """+1 if higher is better, -1 if lower is better, 0 if informational."""
    if metric in METRICS:
        return METRICS[metric][2]
    if metric.endswith("_per_second"):
        return +1
    if (metric.endswith(("_us", "_bytes", "_seconds")) or "_us_" in metric
            or "_bytes_" in metric or metric == "seconds" or metric.startswith("seconds_")):
        return -1
    return 0


def describe(metric):
    """(label, unit) of ``metric``, guessed from its name when it is not in ``METRICS``."""
    if metric in METRICS:
        return METRICS[metric][:2]
    label = metric.replace("_", " ")
    if metric.endswith("_per_second"):
        return label, "/s"
    if metric.endswith("_us") or "_us_" in metric:
        return label, "µs"
    if metric.endswith("_bytes") or "_bytes_" in metric:
        return label, "bytes"
    if "seconds" in metric:
        return label, "s"
    return label, ""


def status_problem(status):
    """None if ``status`` is "ok", "skipped: <reason>" or "failed: <reason>"; else why not."""
    if not isinstance(status, str):
        return "must be a string, got %s" % _kind(status)
    if status == "ok":
        return None
    for prefix in ("skipped: ", "failed: "):
        if status.startswith(prefix) and status[len(prefix):].strip():
            return None
    return 'must be "ok", "skipped: <reason>" or "failed: <reason>", got %r' % (status,)


def is_ok(status):
    """True for a missing or "ok" status."""
    return status is None or status == "ok"


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if is_number(value):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def validate(results, name="results.json"):
    """Check ``results`` against version 1 of the format; return it unchanged.

    Raises ``ValueError("<name>: <path>: <what is wrong>")`` at the first
    problem, the path written like ``suites.echo.results[3].p99_us``.
    """
    def fail(path, what):
        raise ValueError("%s: %s: %s" % (name, path, what))

    def need(mapping, key, path, check, what):
        if key not in mapping:
            fail(path + key, "missing")
        if not check(mapping[key]):
            fail(path + key, "must be %s, got %s" % (what, _kind(mapping[key])))
        return mapping[key]

    def text(value):
        return isinstance(value, str)

    def number(value):
        return is_number(value) and math.isfinite(value)

    if not isinstance(results, dict):
        fail("(top)", "must be an object, got %s" % _kind(results))
    if "schema" not in results:
        fail("schema", "missing (not a results file of python -m benchmarks all?)")
    version = results["schema"]
    if not is_number(version) or version != SCHEMA_VERSION:
        fail("schema", "version %s; this code reads version %d"
             % (json.dumps(version), SCHEMA_VERSION))
    need(results, "generator", "", text, "a string")
    need(results, "started", "", text, "a string (UTC, ISO 8601)")
    need(results, "seconds", "", number, "a finite number")
    need(results, "quick", "", lambda v: isinstance(v, bool), "true or false")
    environment = need(results, "environment", "", lambda v: isinstance(v, dict), "an object")
    for key, check, what in (
            ("cpu", text, "a string"), ("kernel", text, "a string"),
            ("python", text, "a string"), ("implementation", text, "a string"),
            ("platform", text, "a string"), ("selector", text, "a string"),
            ("cores", lambda v: v is None or _integer(v), "an integer"),
            ("ulimit_n", lambda v: v is None or _integer(v), "an integer or null"),
            ("loadgens", lambda v: isinstance(v, dict)
             and all(isinstance(x, str) for x in v.values()),
             "an object of strings"),
            ("loadgen_saturated", lambda v: isinstance(v, list)
             and all(isinstance(x, str) for x in v), "a list of strings")):
        if key in environment and not check(environment[key]):
            fail("environment." + key, "must be %s, got %s" % (what, _kind(environment[key])))
    suites = need(results, "suites", "", lambda v: isinstance(v, dict), "an object")
    for suite_name, suite in suites.items():
        path = "suites.%s" % suite_name
        if not suite_name:
            fail(path, "a suite needs a name")
        if not isinstance(suite, dict):
            fail(path, "must be an object, got %s" % _kind(suite))
        need(suite, "title", path + ".", text, "a string")
        problem = status_problem(need(suite, "status", path + ".", lambda v: True, ""))
        if problem:
            fail(path + ".status", problem)
        if "seconds" in suite and not number(suite["seconds"]):
            fail(path + ".seconds", "must be a finite number, got %s" % _kind(suite["seconds"]))
        rows = need(suite, "results", path + ".", lambda v: isinstance(v, list), "a list")
        for index, row in enumerate(rows):
            where = "%s.results[%d]" % (path, index)
            if not isinstance(row, dict):
                fail(where, "must be an object, got %s" % _kind(row))
            need(row, "scenario", where + ".", text, "a string")
            need(row, "model", where + ".", text, "a string")
            if "status" in row:
                problem = status_problem(row["status"])
                if problem:
                    fail(where + ".status", problem)
            if "runs" in row and not (isinstance(row["runs"], list)
                                      and all(isinstance(r, dict) for r in row["runs"])):
                fail(where + ".runs", "must be a list of objects")
            for key, value in row.items():
                if key in ROW_TEXT_KEYS or key == "runs":
                    continue
                if looks_like_metric(key):
                    if value is not None and not is_number(value):
                        fail("%s.%s" % (where, key),
                             "a metric must be a number or null, got %s" % _kind(value))
                if is_number(value) and not math.isfinite(value):
                    fail("%s.%s" % (where, key),
                         "must be finite, got %r (write null for not measured)" % (value,))
    return results


def from_suite_json(document, suite=None):
    """Wrap what ``python -m benchmarks SUITE --json FILE`` writes into version 1.

    That file is ``{"suite": name, "environment": {...}, "results": [rows]}``.
    Rows without a ``scenario`` get one built from their other scalar,
    non-metric keys ("size=64"), or from ``part``/``test``; rows without a
    ``model`` get "-". The result still goes through ``validate``.
    """
    name = suite or document.get("suite") or "suite"
    rows = []
    for row in document.get("results", []):
        row = dict(row)
        if not isinstance(row.get("scenario"), str):
            for key in ("part", "test", "target", "mode"):
                if isinstance(row.get(key), str):
                    row["scenario"] = row[key]
                    break
            else:
                bits = ["%s=%s" % (key, row[key]) for key in sorted(row)
                        if key not in ROW_TEXT_KEYS and not looks_like_metric(key)
                        and isinstance(row[key], (str, int, float))
                        and not isinstance(row[key], bool)]
                row["scenario"] = ", ".join(bits) or "-"
        if not isinstance(row.get("model"), str):
            row["model"] = "-"
        rows.append(row)
    environment = dict(document.get("environment") or {})
    if "cores" not in environment and "cpus" in environment:
        environment["cores"] = environment["cpus"]
    return {"schema": SCHEMA_VERSION, "generator": "python -m benchmarks %s --json" % name,
            "started": document.get("started", ""), "seconds": 0.0,
            "quick": bool(document.get("quick", False)), "environment": environment,
            "suites": {name: {"title": name, "status": "ok", "results": rows}}}


def load(path):
    """Read and validate a results file; return the document.

    Accepts version 1 documents, and single-suite files written by
    ``python -m benchmarks SUITE --json FILE`` (wrapped by
    ``from_suite_json``). Raises ``ValueError("<path>: <what is wrong>")``
    when the file cannot be read, is not JSON, or does not validate.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as error:
        raise ValueError("%s: cannot read: %s" % (path, error.strerror or error))
    except ValueError as error:
        raise ValueError("%s: not JSON: %s" % (path, error))
    if isinstance(document, dict) and "schema" not in document and "suite" in document \
            and isinstance(document.get("results"), list):
        document = from_suite_json(document)
    return validate(document, path)

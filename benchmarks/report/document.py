"""Write a benchmark run as ``report.md``, ``results.json`` and ``charts/*.svg``.

``write_report(results, directory)`` takes a version-1 results document
(``schema.py``) and writes:

* ``results.json``: the document itself, pretty, keys sorted;
* ``report.md``: the environment, one summary table (reactor against asyncio,
  the minimal selectors loop and the best installed third-party model, per
  suite), the charts, then every row of every suite;
* ``charts/<suite>-cpu.svg``, ``-rate.svg``, ``-latency.svg``, ``-memory.svg``
  and ``charts/scaling.svg``: whichever have figures to draw.

``summary_rows(results)`` and ``summary_markdown(results)`` give the summary
table alone, for docs/BENCHMARKS.md. When a suite ran one asyncio program on
several event loops (rows carrying ``program`` and ``loop``: the echo
programs, aiohttp's hello), ``program_rows(results)`` gives a second table,
under the first: each loop against asyncio's own loop on that program.
"""

import json
import os
import re

from . import svg
from .schema import METRICS, describe, is_number, is_ok, metric_keys, validate

#: The models that stand for reactor: "reactor", else the first model in the
#: scenario whose name starts with "reactor" (reactor-udp, reactor-tls, ...),
#: else "kv" (the resp suite's server, built on reactor).
REACTOR = "reactor"
REACTOR_ALIASES = ("kv",)
#: asyncio: "asyncio-protocol" (the fastest asyncio spelling), else the first
#: model whose name starts with "asyncio" (asyncio-udp, asyncio-tls) and is
#: not a floor.
ASYNCIO = "asyncio-protocol"
#: The floor: a bare selectors loop with no framework ("selectors-minimal",
#: or a variant such as "selectors-minimal-udp"), else a suite's own floor:
#: a model named "*-floor" (http's asyncio-floor answers one fixed reply
#: without parsing) or the loop suite's bare "heapq".
FLOOR = "selectors-minimal"
FLOOR_OTHERS = ("heapq",)
#: Models that are not third-party: reactor's own, the standard library's and
#: the suites' baselines. Any other model is third-party (uvloop, gevent,
#: twisted, trio, curio, aiohttp, uvicorn, websockets, redis-server, ...),
#: except names with a space, which label variants of one setup ("2 processes").
NOT_THIRD_PARTY = ("reactor", "kv", "asyncio", "selectors", "threads", "threadpool",
                   "prefork", "http.server", "heapq", "-")
#: A row with ``program`` and ``loop`` is one asyncio program on one event loop. The
#: program's baseline is its row on asyncio's own loop; a row on reactor.aio (reactor's
#: loop behind asyncio's API) never stands for reactor nor counts as third party.
BASE_LOOP = "asyncio"
REACTOR_AIO = "reactor.aio"
LOOP_ORDER = (BASE_LOOP, REACTOR_AIO, "uvloop")
#: loadgen_busy at or above this: the load generator, not the server, set the rate.
SATURATED = 0.9
#: The report's explanation of the summary table.
SUMMARY_RULES = (
    "Ratios are reactor's figure divided by the other model's, in the same scenario of the "
    "same run. **Server CPU per request: lower is better** (0.80x = reactor spends 20% less "
    "CPU per request). **Requests/s: higher is better** (1.25x = 25% more). "
    "The headline scenario of a suite is the first scenario, in the order the suite ran "
    "them, in which reactor has both a server-CPU-per-request figure and a rate (if none "
    "has both, the first in which it has either). "
    "asyncio = `asyncio-protocol`, else the first `asyncio*` model that is not a floor; "
    "floor = `selectors-minimal` (a bare selectors loop, no framework), else the suite's "
    "own floor (`asyncio-floor`: a fixed reply, no parsing; `heapq`: a bare heap, no "
    "loop); third party = the best "
    "installed model that is not reactor, asyncio, a selectors loop, threads or prefork "
    "(lowest CPU per request, highest rate; named in the cell). "
    "Where the load generator was busy >= 90%, requests/s is partly its own limit: "
    "compare CPU per request.")
#: The report's explanation of the program table (one asyncio program on each loop).
PROGRAM_RULES = (
    "The same asyncio program on each event loop: asyncio's own, reactor.aio (reactor's "
    "loop behind asyncio's API) and uvloop. The program is unchanged; the loop is the only "
    "difference. Ratios are that loop's figure divided by asyncio's loop's, in the same "
    "scenario of the same run (the suite's headline scenario, else the first the program "
    "ran in): **CPU per request: lower is better; rate: higher is better**. A program's "
    "row on reactor.aio is compared here only: in the table above it neither stands for "
    "reactor nor counts as third party.")


# -- picking models and metrics ---------------------------------------------------------

def is_reactor(model):
    return model.startswith(REACTOR) or model in REACTOR_ALIASES


def is_asyncio(model):
    return model.startswith("asyncio") and not is_floor(model)


def is_floor(model):
    return model.startswith(FLOOR) or model.endswith("-floor") or model in FLOOR_OTHERS


def is_third_party(model):
    return not (model.startswith(NOT_THIRD_PARTY) or " " in model)


def cpu_metric(rows):
    """The suite's CPU-per-request metric: server_cpu_us_per_request, else a *cpu_us_per*."""
    keys = [key for row in rows for key in row if is_number(row.get(key)) or row[key] is None]
    if "server_cpu_us_per_request" in keys:
        return "server_cpu_us_per_request"
    return next((key for key in keys if "cpu_us_per" in key), None)


def rate_metric(rows):
    """The suite's rate: requests_per_second, else messages_per_second, else a *_per_second."""
    keys = [key for row in rows for key in row if is_number(row.get(key)) or row[key] is None]
    for key in ("requests_per_second", "messages_per_second"):
        if key in keys:
            return key
    return next((key for key in keys if key.endswith("_per_second")), None)


def scenarios(rows):
    """Scenario names in the order they first appear, with their rows."""
    order, grouped = [], {}
    for row in rows:
        if row["scenario"] not in grouped:
            order.append(row["scenario"])
            grouped[row["scenario"]] = []
        grouped[row["scenario"]].append(row)
    return [(name, grouped[name]) for name in order]


def _value(row, metric):
    if row is None or metric is None or not is_ok(row.get("status")):
        return None
    value = row.get(metric)
    return value if is_number(value) else None


def on_reactor_aio(row):
    """True for an asyncio program's row on reactor.aio: compared in the program table."""
    return row.get("loop") == REACTOR_AIO


def _reactor_row(rows):
    ok = [row for row in rows if is_ok(row.get("status")) and not on_reactor_aio(row)]
    for test in (lambda m: m == REACTOR, lambda m: m.startswith(REACTOR),
                 lambda m: m in REACTOR_ALIASES):
        for row in ok:
            if test(row["model"]):
                return row
    return None


def _pick(rows, exact, prefix_test, cpu, rate):
    """The row of ``exact`` if it has a figure, else the first row passing ``prefix_test``."""
    candidates = [row for row in rows if _value(row, cpu) is not None
                  or _value(row, rate) is not None]
    for row in candidates:
        if row["model"] == exact:
            return row
    return next((row for row in candidates if prefix_test(row["model"])), None)


def _ratio(mine, theirs):
    if mine is None or theirs is None or theirs == 0:
        return None
    return mine / theirs


def headline(rows, cpu, rate):
    """(scenario, its rows, rule) of a suite's headline: see SUMMARY_RULES.

    rule is "both" when reactor has both figures there, "either" for the
    fallback, and None (with no scenario) when reactor has neither anywhere.
    """
    groups = scenarios(rows)
    for wanted in ("both", "either"):
        for name, group in groups:
            mine = _reactor_row(group)
            have = [_value(mine, cpu) is not None, _value(mine, rate) is not None]
            if all(have) if wanted == "both" else any(have):
                return name, group, wanted
    return None, [], None


def summary_rows(results):
    """One dict per suite: its headline scenario and reactor's ratios there.

    Keys: suite, title, status, scenario, rule ("both", "either" or None),
    reactor (model), cpu_metric, rate_metric, reactor_cpu, reactor_rate,
    loadgen_busy (reactor's cell), and for each comparison ("asyncio",
    "floor"): <c>_model, <c>_cpu_ratio, <c>_rate_ratio; for the third party,
    chosen separately per metric: third_party_cpu_model,
    third_party_cpu_ratio, third_party_rate_model, third_party_rate_ratio.
    Ratios are reactor / other (CPU: lower is better; rate: higher is
    better); None where a figure is missing.
    """
    out = []
    for name, suite in results["suites"].items():
        rows = suite["results"]
        ok_rows = [row for row in rows if is_ok(row.get("status"))]
        cpu, rate = cpu_metric(ok_rows), rate_metric(ok_rows)
        scenario, group, rule = headline(rows, cpu, rate)
        entry = {"suite": name, "title": suite["title"], "status": suite["status"],
                 "scenario": scenario, "rule": rule, "cpu_metric": cpu, "rate_metric": rate,
                 "reactor": None, "reactor_cpu": None, "reactor_rate": None,
                 "loadgen_busy": None}
        for key in ("asyncio", "floor"):
            entry.update({key + "_model": None, key + "_cpu_ratio": None,
                          key + "_rate_ratio": None})
        entry.update({"third_party_cpu_model": None, "third_party_cpu_ratio": None,
                      "third_party_rate_model": None, "third_party_rate_ratio": None})
        mine = _reactor_row(group) if scenario is not None else None
        if mine is not None:
            my_cpu, my_rate = _value(mine, cpu), _value(mine, rate)
            entry.update(reactor=mine["model"], reactor_cpu=my_cpu, reactor_rate=my_rate,
                         loadgen_busy=_value(mine, "loadgen_busy"))
            for key, exact, test in (("asyncio", ASYNCIO, is_asyncio),
                                     ("floor", FLOOR, is_floor)):
                other = _pick(group, exact, test, cpu, rate)
                if other is not None:
                    entry[key + "_model"] = other["model"]
                    entry[key + "_cpu_ratio"] = _ratio(my_cpu, _value(other, cpu))
                    entry[key + "_rate_ratio"] = _ratio(my_rate, _value(other, rate))
            third = [row for row in group
                     if is_third_party(row["model"]) and not on_reactor_aio(row)]
            by_cpu = [row for row in third if _value(row, cpu)]
            by_rate = [row for row in third if _value(row, rate)]
            if by_cpu and my_cpu is not None:
                best = min(by_cpu, key=lambda row: _value(row, cpu))
                entry["third_party_cpu_model"] = best["model"]
                entry["third_party_cpu_ratio"] = _ratio(my_cpu, _value(best, cpu))
            if by_rate and my_rate is not None:
                best = max(by_rate, key=lambda row: _value(row, rate))
                entry["third_party_rate_model"] = best["model"]
                entry["third_party_rate_ratio"] = _ratio(my_rate, _value(best, rate))
        out.append(entry)
    return out


def program_rows(results):
    """One dict per (suite, program) run on two or more loops: each loop's ratios to asyncio's.

    Keys: suite, title, program, scenario (the suite's headline if the
    program's asyncio-loop row has a figure there, else the first scenario
    where it has), cpu_metric, rate_metric, base_model, base_cpu, base_rate,
    and loops: {loop: {"model", "status", "cpu_ratio", "rate_ratio"}} for the
    other loops, ratios = that loop's figure / asyncio's loop's (None where
    one is missing). [] when no row carries a program.
    """
    out = []
    for name, suite in results["suites"].items():
        rows = [row for row in suite["results"] if isinstance(row.get("program"), str)
                and isinstance(row.get("loop"), str)]
        if not rows:
            continue
        ok_rows = [row for row in suite["results"] if is_ok(row.get("status"))]
        cpu, rate = cpu_metric(ok_rows), rate_metric(ok_rows)
        prefer = headline(suite["results"], cpu, rate)[0]
        programs = []
        for row in rows:
            if row["program"] not in programs:
                programs.append(row["program"])
        for program in programs:
            groups = [(scenario, {row["loop"]: row for row in group})
                      for scenario, group in scenarios([r for r in rows
                                                        if r["program"] == program])]
            usable = [(scenario, by_loop) for scenario, by_loop in groups if len(by_loop) >= 2
                      and (_value(by_loop.get(BASE_LOOP), cpu) is not None
                           or _value(by_loop.get(BASE_LOOP), rate) is not None)]
            if not usable:
                continue
            scenario, by_loop = sorted(usable, key=lambda item: item[0] != prefer)[0]
            base = by_loop[BASE_LOOP]
            entry = {"suite": name, "title": suite["title"], "program": program,
                     "scenario": scenario, "cpu_metric": cpu, "rate_metric": rate,
                     "base_model": base["model"], "base_cpu": _value(base, cpu),
                     "base_rate": _value(base, rate), "loops": {}}
            for loop in sorted(by_loop, key=lambda loop: (LOOP_ORDER + (loop,)).index(loop)):
                if loop == BASE_LOOP:
                    continue
                row = by_loop[loop]
                entry["loops"][loop] = {
                    "model": row["model"], "status": row.get("status", "ok"),
                    "cpu_ratio": _ratio(_value(row, cpu), entry["base_cpu"]),
                    "rate_ratio": _ratio(_value(row, rate), entry["base_rate"])}
            out.append(entry)
    return out


# -- markdown ---------------------------------------------------------------------------------

def md(text):
    """Escape text for a markdown table cell."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return text.replace("<", "\\<").replace(">", "\\>")


def number(value):
    """A figure for a table: thousands separated, about four significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if not is_number(value):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return "{:,}".format(int(value))
    size = abs(value)
    if size >= 1000:
        return "{:,.0f}".format(value)
    if size >= 100:
        return "%.1f" % value
    if size >= 1:
        return "%.2f" % value
    if size == 0:
        return "0"
    return "%.3g" % value


def table(header, rows):
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _times(ratio, model=None):
    if ratio is None:
        return "–"
    text = "%.2fx" % ratio
    return "%s (%s)" % (text, md(model)) if model else text


def summary_markdown(results):
    """The summary table (with the rule that picks each headline) as markdown text."""
    header = ["suite", "headline scenario", "reactor", "CPU/req (µs)", "CPU vs asyncio",
              "CPU vs floor", "CPU vs third party", "rate", "rate vs asyncio", "rate vs floor",
              "rate vs third party", "loadgen busy"]
    rows = []
    for entry in summary_rows(results):
        name = "%s (%s)" % (md(entry["suite"]), md(entry["title"])) \
            if entry["title"] != entry["suite"] else md(entry["suite"])
        if entry["status"] != "ok" and entry["scenario"] is None:
            rows.append([name, md(entry["status"])] + [""] * (len(header) - 2))
            continue
        if entry["scenario"] is None:
            models = sorted({row["model"] for row in results["suites"][entry["suite"]]["results"]})
            rows.append([name, md("no cell of reactor against another model (this suite "
                                  "compares %s): see its table below" % ", ".join(models))]
                        + [""] * (len(header) - 2))
            continue
        unit = describe(entry["rate_metric"])[1] if entry["rate_metric"] else ""
        scenario = md(entry["scenario"]) + ("" if entry["rule"] == "both" else " (fallback)")
        busy = entry["loadgen_busy"]
        rows.append([
            name, scenario, md(entry["reactor"]),
            number(entry["reactor_cpu"]),
            _times(entry["asyncio_cpu_ratio"], entry["asyncio_model"]),
            _times(entry["floor_cpu_ratio"], entry["floor_model"]),
            _times(entry["third_party_cpu_ratio"], entry["third_party_cpu_model"]),
            "n/a" if entry["reactor_rate"] is None else "%s %s" % (number(entry["reactor_rate"]),
                                                                   unit),
            _times(entry["asyncio_rate_ratio"], entry["asyncio_model"]),
            _times(entry["floor_rate_ratio"], entry["floor_model"]),
            _times(entry["third_party_rate_ratio"], entry["third_party_rate_model"]),
            "n/a" if busy is None else "%.0f%%%s" % (100 * busy,
                                                      " (saturated)" if busy >= SATURATED else "")])
    lines = [SUMMARY_RULES, ""] + table(header, rows)
    programs = program_markdown(results)
    return "\n".join(lines + ([""] + programs if programs else [])) + "\n"


def program_markdown(results):
    """The program table's lines (its rule, then the table); [] when no row has a program."""
    entries = program_rows(results)
    if not entries:
        return []
    loops = []
    for entry in entries:
        loops += [loop for loop in entry["loops"] if loop not in loops]
    loops.sort(key=lambda loop: (LOOP_ORDER + (loop,)).index(loop))
    header = ["suite", "program", "scenario", "on asyncio", "CPU/req (µs)", "rate"]
    for loop in loops:
        header += ["%s CPU vs asyncio" % loop, "%s rate vs asyncio" % loop]
    rows = []
    for entry in entries:
        unit = describe(entry["rate_metric"])[1] if entry["rate_metric"] else ""
        row = [md(entry["suite"]), md(entry["program"]), md(entry["scenario"]),
               md(entry["base_model"]), number(entry["base_cpu"]),
               "n/a" if entry["base_rate"] is None else "%s %s" % (number(entry["base_rate"]),
                                                                   unit)]
        for loop in loops:
            cell = entry["loops"].get(loop)
            if cell is None:
                row += ["–", "–"]
            elif not is_ok(cell["status"]):
                row += [md(cell["status"].split(":")[0]) + " (%s)" % md(cell["model"]), ""]
            else:
                row += [_times(cell["cpu_ratio"], cell["model"]), _times(cell["rate_ratio"])]
        rows.append(row)
    return [PROGRAM_RULES, ""] + table(header, rows)


def saturated_cells(results):
    """(cells, derived): the environment's loadgen_saturated list, else rows with busy >= 0.9."""
    listed = results["environment"].get("loadgen_saturated")
    if listed is not None:
        return list(listed), False
    cells = []
    for name, suite in results["suites"].items():
        for row in suite["results"]:
            busy = _value(row, "loadgen_busy")
            if busy is not None and busy >= SATURATED:
                cells.append("%s / %s / %s" % (name, row["scenario"], row["model"]))
    return cells, True


def environment_lines(results):
    """The report's opening: what ran, where, and whether the load generator kept up."""
    env = results["environment"]

    def get(key):
        value = env.get(key)
        return "not recorded" if value is None or value == "" else md(value)
    cores = env.get("cores", env.get("cpus"))
    python = " ".join(str(env[k]) for k in ("implementation", "python") if env.get(k))
    loadgens = env.get("loadgens")
    if loadgens:
        loadgen_text = "; ".join("%s: %s" % (md(suite), md(tool))
                                 for suite, tool in sorted(loadgens.items()))
    else:
        loadgen_text = "not recorded"
    cells, derived = saturated_cells(results)
    if not cells:
        saturation = "no" + (" (no cell had loadgen busy >= 90%)" if derived else "")
    else:
        per_suite = {}
        for cell in cells:
            per_suite.setdefault(cell.split(" / ")[0], []).append(cell)
        shown = cells[:8]
        saturation = ("**yes**, in %d cell%s (%s)%s: %s%s. There the requests/s are partly "
                      "the load generator's limit; compare server CPU per request."
                      % (len(cells), "" if len(cells) == 1 else "s",
                         ", ".join("%s: %d" % (md(s), len(c)) for s, c in per_suite.items()),
                         ", derived from loadgen busy >= 90%" if derived else "",
                         "; ".join(md(c) for c in shown),
                         "; and %d more (column loadgen_busy in the tables below)"
                         % (len(cells) - len(shown)) if len(cells) > len(shown) else ""))
    started = results.get("started") or "an unrecorded time"
    lines = [
        "# reactor benchmark report", "",
        "`%s`, started %s, %.0f s%s." % (results["generator"], started, results["seconds"],
                                         "; quick sizes (fewer and shorter runs than the full "
                                         "suites)" if results["quick"] else ""), "",
        "- **CPU:** %s" % get("cpu"),
        "- **Cores:** %s" % ("not recorded" if cores is None else cores),
        "- **Kernel:** %s" % get("kernel"),
        "- **Python:** %s" % (md(python) if python else "not recorded"),
        "- **Platform:** %s" % get("platform"),
        "- **Selector:** %s" % get("selector"),
        "- **Open-file limit (ulimit -n):** %s" % get("ulimit_n"),
        "- **Load generators:** %s" % loadgen_text,
        "- **Load generator saturated:** %s" % saturation,
    ]
    return lines


# -- charts -----------------------------------------------------------------------------------

def _slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "suite"


def _models(group):
    return [row["model"] for row in group]


def _bars_per_scenario(title, subtitle, groups, metric):
    """One panel per scenario that has ``metric`` for some model; None if none has."""
    label, unit = describe(metric)
    drawn = []
    for name, group in groups:
        values = [_value(row, metric) for row in group]
        if any(v is not None for v in values):
            drawn.append((name, _models(group), values))
    if not drawn:
        return None
    if len(drawn) == 1:
        name, models, values = drawn[0]
        return svg.bar_chart("%s, %s" % (title, name), models, {label: values}, unit,
                             quantity=label, subtitle=subtitle)
    charts = [svg.bar_chart(name, models, {label: values}, unit, quantity=label)
              for name, models, values in drawn]
    return svg.panels(title, charts,
                      subtitle=subtitle + "; one panel per scenario, each with its own scale")


PERCENTILES = (("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99"), ("p999_us", "p99.9"))
MEMORY = (("heap_bytes_per_connection", "Python heap (tracemalloc)"),
          ("rss_bytes_per_connection", "RSS growth"))


def _latency_chart(title, groups, prefer):
    """Percentiles by model in the headline scenario, else the first scenario with any."""
    ordered = sorted(groups, key=lambda item: item[0] != prefer)
    for name, group in ordered:
        series = {label: [_value(row, key) for row in group] for key, label in PERCENTILES
                  if any(_value(row, key) is not None for row in group)}
        if series:
            return svg.bar_chart("%s: latency percentiles, %s" % (title, name), _models(group),
                                 series, "µs", quantity="latency", horizontal=False, log="auto",
                                 subtitle="lower is better; as the load generator timed each "
                                          "request")
    return None


def _memory_chart(title, groups):
    charts = []
    for name, group in groups:
        rows = [row for row in group if any(key in row for key, _ in MEMORY)]
        series = {label: [_value(row, key) for row in rows] for key, label in MEMORY
                  if any(key in row for row in rows)}
        if rows and any(v is not None for values in series.values() for v in values):
            charts.append(svg.bar_chart(name, _models(rows), series, "bytes",
                                        quantity="per idle connection"))
    if not charts:
        return None
    return svg.panels("%s: memory per idle connection" % title, charts,
                      subtitle="lower is better; heap traced by tracemalloc, RSS from /proc "
                               "in an untraced run")


def _scaling_chart(title, rows, cpu, rate):
    """Rate, p99 and CPU per request against connections (log axis), one line per model."""
    ok = [row for row in rows if is_number(row.get("connections"))]
    xs = sorted({row["connections"] for row in ok})
    if len(xs) < 2:
        return None
    models = []
    for row in ok:
        if row["model"] not in models:
            models.append(row["model"])

    def series(metric):
        out = {}
        for model in models:
            points = []
            for x in xs:
                cell = next((row for row in ok if row["model"] == model
                             and row["connections"] == x and _value(row, metric) is not None),
                            None)
                points.append(_value(cell, metric))
            if any(p is not None for p in points):
                out[model] = points
        return out
    charts = []
    for metric, log_y, better in ((rate, False, "higher"), ("p99_us", "auto", "lower"),
                                  (cpu, False, "lower")):
        if metric is None:
            continue
        data = series(metric)
        if data:
            label, unit = describe(metric)
            charts.append(svg.line_chart("%s against connections (%s is better)"
                                         % (label, better), xs, data, "connections",
                                         "%s (%s)" % (label, unit), log_x=True, log_y=log_y))
    if not charts:
        return None
    return svg.panels("%s: %s to %s connections" % (
        title, "{:,}".format(int(xs[0])), "{:,}".format(int(xs[-1]))), charts,
        subtitle="one line per model; a missing point could not run (see the table)")


def write_charts(results, directory):
    """Write charts/*.svg; return [(suite, caption, relative path)]."""
    os.makedirs(os.path.join(directory, "charts"), exist_ok=True)
    written = []
    for name, suite in results["suites"].items():
        rows = suite["results"]
        ok_rows = [row for row in rows if is_ok(row.get("status"))]
        cpu, rate = cpu_metric(ok_rows), rate_metric(ok_rows)
        groups = scenarios(rows)
        title = suite["title"]
        prefer = headline(rows, cpu, rate)[0]
        charts = []
        if name == "scaling":
            charts.append(("scaling", "scaling curve", _scaling_chart(title, rows, cpu, rate)))
        else:
            if cpu:
                charts.append(("%s-cpu" % _slug(name), "server CPU per request",
                               _bars_per_scenario("%s: %s" % (title, describe(cpu)[0]),
                                                  "µs, lower is better", groups, cpu)))
            if rate:
                label, unit = describe(rate)
                charts.append(("%s-rate" % _slug(name), label,
                               _bars_per_scenario("%s: %s" % (title, label),
                                                  "%s, higher is better" % unit, groups, rate)))
            charts.append(("%s-latency" % _slug(name), "latency percentiles",
                           _latency_chart(title, groups, prefer)))
        charts.append(("%s-memory" % _slug(name), "memory per idle connection",
                       _memory_chart(title, groups)))
        for stem, caption, chart in charts:
            if chart is None:
                continue
            relative = "charts/%s.svg" % stem
            with open(os.path.join(directory, relative), "w", encoding="utf-8") as handle:
                handle.write(chart)
            written.append((name, caption, relative))
    return written


# -- raw tables ------------------------------------------------------------------------------

def raw_table(rows):
    """Every row and every figure: scenario, model, status, metrics, then other scalar fields."""
    metrics, others = [], []
    for row in rows:
        for key in metric_keys(row):
            if key not in metrics:
                metrics.append(key)
    known = [key for key in METRICS if key in metrics]
    metrics = known + [key for key in metrics if key not in METRICS]
    for row in rows:
        for key, value in row.items():
            if key in ("scenario", "model", "status", "runs") or key in metrics \
                    or key in others or isinstance(value, (list, dict)):
                continue
            others.append(key)
    header = ["scenario", "model", "status"] + metrics + others
    body = []
    for row in rows:
        cells = [md(row["scenario"]), md(row["model"]), md(row.get("status", "ok"))]
        cells += [number(row[key]) if key in row else "" for key in metrics]
        cells += [md(number(row[key])) if key in row else "" for key in others]
        body.append(cells)
    return table([md(h) for h in header], body)


def report_markdown(results, charts):
    """The whole report.md as text; ``charts`` from write_charts."""
    lines = environment_lines(results)
    lines += ["", "## Summary", "", summary_markdown(results).rstrip("\n"), ""]
    lines += ["## Charts", ""]
    if not charts:
        lines += ["No suite has figures to chart.", ""]
    current = None
    for suite, caption, path in charts:
        if suite != current:
            current = suite
            lines += ["### %s" % _suite_heading(suite, results["suites"][suite]), ""]
        lines += ["![%s: %s](%s)" % (md(suite).replace("[", "(").replace("]", ")"),
                                      caption, path), ""]
    lines += ["## Results per suite", "",
              "Every row each suite wrote (medians of the runs); units are in the column "
              "names: `_us` microseconds, `_bytes` bytes, `_per_second` per second; "
              "`loadgen_busy` is the load generator's share of a core (>= 0.9: saturated).", ""]
    for name, suite in results["suites"].items():
        lines += ["### %s" % _suite_heading(name, suite), ""]
        extra = ", %.1f s" % suite["seconds"] if is_number(suite.get("seconds")) else ""
        lines += ["Status: %s%s." % (md(suite["status"]), extra), ""]
        if suite["results"]:
            lines += raw_table(suite["results"]) + [""]
        else:
            lines += ["No rows.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _suite_heading(name, suite):
    title = suite["title"]
    return md(name) if title == name else "%s: %s" % (md(name), md(title))


def write_report(results, directory):
    """Validate ``results`` and write results.json, report.md and charts/*.svg in ``directory``.

    Returns the paths written (results.json, report.md, then the charts).
    Raises ValueError (from ``validate``) before writing anything if the
    document is not a valid version-1 results document.
    """
    validate(results)
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, "results.json"), os.path.join(directory, "report.md")]
    with open(paths[0], "w", encoding="utf-8") as handle:
        # Not sort_keys: the suites stay in the order they ran, which is the
        # order of the summary table when the file is read back.
        json.dump(results, handle, indent=2, allow_nan=False)
        handle.write("\n")
    charts = write_charts(results, directory)
    with open(paths[1], "w", encoding="utf-8") as handle:
        handle.write(report_markdown(results, charts))
    return paths + [os.path.join(directory, path) for _, _, path in charts]

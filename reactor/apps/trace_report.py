"""``python -m reactor trace-report FILE``: what a loop trace says, as text and an SVG timeline.

A trace from ``--trace FILE`` (``reactor/trace.py``) holds one complete
event per step of every pass. This report adds them up::

    where the time went   select wait | I/O dispatch | callbacks | timers | loop overhead
    slowest callbacks     by name: calls, total, longest, mean
    pass lengths          the work of each pass (its select wait left out), in 1-3-10
                          buckets, as text bars
    --svg OUT             a timeline: one row per category, time along the x axis

*Loop overhead* is a pass's time outside its steps: computing the wait,
expiring timers into the queue, the counters, and the tracer's own
bookkeeping (so it is larger traced than untraced).

The SVG needs no library: a time axis with labelled ticks, a row per
category, a legend. Each row is a strip of one-pixel columns, and a
column's bar is as tall as the share of its time that category was busy,
so a trace of a million events still draws as a few thousand rectangles
and a sliver of I/O does not look like a solid block; zoom in Perfetto
(https://ui.perfetto.dev) for the events themselves.
"""

import argparse
import json
import math
import sys
from typing import Any, Dict, List, Tuple
from xml.sax.saxutils import escape

SUMMARY = "summarise a --trace file: time shares, slowest callbacks, pass lengths (--svg: draw it)"

#: The categories a pass is made of, in the order a pass runs them, and their legend.
CATEGORIES = (("select", "select wait"), ("io", "I/O dispatch"), ("callback", "callbacks"),
              ("timer", "timers"))
OVERHEAD = "loop overhead"
COLORS = {"pass": "#9e9e9e", "select": "#90caf9", "io": "#ef6c00", "callback": "#2e7d32",
          "timer": "#8e24aa"}
#: Upper bounds of the pass-length buckets, in microseconds (1-3-10 steps, 1 us to 10 s).
BUCKETS_US = tuple(base * 10 ** power for power in range(8) for base in (1, 3))
BAR_WIDTH = 40
SVG_WIDTH, ROW_HEIGHT, LEFT, TOP = 1000, 28, 90, 40


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the trace-report options to ``parser``."""
    parser.add_argument("file", metavar="FILE", help="a trace written by --trace FILE")
    parser.add_argument("--svg", metavar="OUT", help="also draw the timeline as SVG into OUT")
    parser.add_argument("--top", type=int, default=10, metavar="N",
                        help="how many of the slowest callbacks to list (default 10)")


def run(args: Any) -> int:
    """Print the report of ``args.file``; exit 1 (via SystemExit) if it is not a reactor trace."""
    if args.top < 1:
        raise SystemExit("--top must be at least 1, got %d" % args.top)
    events = load_events(args.file)
    summary = summarize(events)
    sys.stdout.write(format_report(args.file, summary, args.top))
    if args.svg:
        try:
            with open(args.svg, "w", encoding="utf-8") as out:
                out.write(render_svg(args.file, events))
        except OSError as exc:
            raise SystemExit("cannot write %s: %s" % (args.svg, exc)) from None
        sys.stdout.write("\ntimeline written to %s\n" % args.svg)
    return 0


def load_events(path: str) -> List[Dict[str, Any]]:
    """Return the events of the trace in ``path``; SystemExit with the reason if it is not one."""
    try:
        with open(path, encoding="utf-8") as trace:
            text = trace.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit("cannot read %s: %s" % (path, exc)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SystemExit("%s is not valid JSON (%s); a trace is finished by stop_trace() or "
                         "the server's shutdown, so one cut short (kill -9, a crash) lacks "
                         "its closing brackets" % (path, exc)) from None
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        raise SystemExit("%s is JSON but not a trace: expected {\"traceEvents\": [...]}" % path)
    if not any(event.get("ph") == "X" and event.get("cat") == "pass" for event in events):
        raise SystemExit("%s has no loop passes (events with cat \"pass\"); was it written by "
                         "--trace or loop.start_trace()?" % path)
    return events


def summarize(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Add the events up: passes, the work in each, time per category, per-name call stats."""
    passes: List[Tuple[Any, float]] = []             # (ts, dur) of each pass
    waits: Dict[Any, float] = {}                     # a pass's ts -> its select wait
    seconds = {key: 0.0 for key, _ in CATEGORIES}
    calls: Dict[str, List[float]] = {}               # name -> [count, total us, max us]
    first = math.inf
    last = 0.0
    bytes_moved = {"in": 0, "out": 0}
    for event in events:
        phase, category = event.get("ph"), event.get("cat")
        if phase == "C" and event.get("name") == "bytes":
            bytes_moved.update(event.get("args", {}))
        if phase != "X":
            continue
        duration = float(event.get("dur", 0))
        if category == "select":
            waits[event.get("ts")] = duration
        if category == "pass":
            passes.append((event.get("ts"), duration))
            first = min(first, float(event["ts"]))
            last = max(last, float(event["ts"]) + duration)
        elif category in seconds:
            seconds[category] += duration / 1e6
            if category != "select" and event.get("name") != "expire timers":
                stats = calls.setdefault(event.get("name", "?"), [0, 0.0, 0.0])
                stats[0] += 1
                stats[1] += duration
                stats[2] = max(stats[2], duration)
    total = sum(duration for _, duration in passes) / 1e6
    seconds[OVERHEAD] = max(0.0, total - sum(seconds.values()))
    # A pass and its wait start at the same instant, so the wait is found by ts.
    work = [duration - waits.get(ts, 0.0) for ts, duration in passes]
    return {"passes": passes, "work": work, "total_seconds": total, "span_seconds": max(0.0, last - first) / 1e6,
            "seconds": seconds, "calls": calls, "bytes": bytes_moved}


def format_report(path: str, summary: Dict[str, Any], top: int) -> str:
    """Return the text report: totals, time shares, slowest callbacks, pass-length histogram."""
    total = summary["total_seconds"]
    lines = ["trace %s: %d passes, %.3f s inside passes over %.3f s"
             % (path, len(summary["passes"]), total, summary["span_seconds"]),
             "bytes: %d in, %d out" % (summary["bytes"].get("in", 0),
                                       summary["bytes"].get("out", 0)),
             "", "where the time went:"]
    for label, seconds in _shares(summary["seconds"]):
        share = seconds / total if total else 0.0
        lines.append("  %-14s %6.1f%% %10.3f s  %s" % (label, 100 * share, seconds,
                                                       "#" * round(share * BAR_WIDTH)))
    slowest = sorted(summary["calls"].items(), key=lambda item: (-item[1][2], -item[1][1]))
    lines += ["", "slowest callbacks (top %d by longest call):" % top,
              "  %8s %11s %10s %10s  %s" % ("calls", "total ms", "max ms", "mean us", "name")]
    for name, (count, total_us, max_us) in slowest[:top]:
        lines.append("  %8d %11.3f %10.3f %10.1f  %s"
                     % (count, total_us / 1e3, max_us / 1e3, total_us / count, name))
    lines += ["", "pass lengths, select wait excluded (the time one pass kept every "
              "connection waiting):"]
    counts = _histogram(summary["work"])
    peak = max(counts) if counts else 1
    used = [i for i, count in enumerate(counts) if count]     # passes is never empty
    for i in range(used[0], used[-1] + 1):
        low = _format_us(BUCKETS_US[i - 1]) if i else "0"
        high = _format_us(BUCKETS_US[i]) if i < len(BUCKETS_US) else "..."
        lines.append("  %7s - %-7s %8d  %s" % (low, high, counts[i],
                                               "#" * math.ceil(counts[i] / peak * BAR_WIDTH)))
    return "\n".join(lines) + "\n"


def render_svg(path: str, events: List[Dict[str, Any]]) -> str:
    """Return an SVG timeline: a row per category, time on the x axis, a legend."""
    rows = [("pass", "passes")] + list(CATEGORIES)
    spans = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events
             if e.get("ph") == "X" and e.get("cat") == "pass"]
    start = min(s for s, _ in spans)
    span_us = max(max(end for _, end in spans) - start, 1.0)
    plot_width = SVG_WIDTH - LEFT - 20          # one column per pixel
    scale = plot_width / span_us
    height = TOP + ROW_HEIGHT * len(rows) + 90
    unit, divisor = _unit(span_us)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (SVG_WIDTH, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">loop trace %s: %d passes over %s</text>'
           % (LEFT, escape(path), len(spans), _format_us(span_us))]
    for row, (category, label) in enumerate(rows):
        y = TOP + row * ROW_HEIGHT
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (LEFT - 8, y + ROW_HEIGHT // 2 + 4, escape(label)))
        busy = _busy_columns([(float(e["ts"]) - start, float(e.get("dur", 0))) for e in events
                              if e.get("ph") == "X" and e.get("cat") == category],
                             span_us, plot_width)
        full = ROW_HEIGHT - 8
        for x0, x1, share in _runs(busy, full):
            bar = max(1, round(share * full))
            out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>'
                       % (LEFT + x0, y + 4 + full - bar, x1 - x0, bar, COLORS[category]))
    axis_y = TOP + ROW_HEIGHT * len(rows) + 6
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
               % (LEFT, axis_y, LEFT + plot_width, axis_y))
    step = _nice_step(span_us / 8)
    tick = 0.0
    while tick <= span_us:
        x = LEFT + tick * scale
        out.append('<line x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="black"/>'
                   % (x, axis_y, x, axis_y + 5))
        out.append('<text x="%.2f" y="%d" text-anchor="middle">%g</text>'
                   % (x, axis_y + 18, round(tick / divisor, 6)))
        tick += step
    out.append('<text x="%d" y="%d" text-anchor="middle">time since the first pass (%s)</text>'
               % (LEFT + plot_width // 2, axis_y + 36, unit))
    x = LEFT
    for category, label in rows:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                   % (x, axis_y + 50, COLORS[category]))
        out.append('<text x="%d" y="%d">%s</text>' % (x + 16, axis_y + 60, escape(label)))
        x += 30 + 8 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _shares(seconds: Dict[str, float]) -> List[Tuple[str, float]]:
    return [(label, seconds[key]) for key, label in CATEGORIES] + [(OVERHEAD, seconds[OVERHEAD])]


def _histogram(durations_us: List[float]) -> List[int]:
    """Count pass lengths per bucket; the last bucket holds everything over 30 s."""
    counts = [0] * (len(BUCKETS_US) + 1)
    for duration in durations_us:
        index = 0
        while index < len(BUCKETS_US) and duration >= BUCKETS_US[index]:
            index += 1
        counts[index] += 1
    return counts


def _busy_columns(spans: List[Tuple[float, float]], span_us: float,
                  columns: int) -> List[float]:
    """Return, per pixel column, the share of its time covered by ``spans`` (start, duration)."""
    width_us = span_us / columns
    busy = [0.0] * columns
    for start, duration in spans:
        end = start + duration
        column = min(int(start / width_us), columns - 1)
        while column < columns and column * width_us < end:
            left = max(start, column * width_us)
            right = min(end, (column + 1) * width_us)
            busy[column] += max(right - left, 0.0) / width_us
            column += 1
        if duration == 0:                       # an instant still shows as a sliver
            busy[min(int(start / width_us), columns - 1)] += 1e-9
    return [min(share, 1.0) for share in busy]


def _runs(busy: List[float], full: int) -> List[Tuple[int, int, float]]:
    """Group neighbouring columns whose bars have the same height: one rectangle each."""
    runs: List[Tuple[int, int, float]] = []
    for column, share in enumerate(busy):
        if share <= 0:
            continue
        height = max(1, round(share * full))
        if runs and runs[-1][1] == column and max(1, round(runs[-1][2] * full)) == height:
            runs[-1] = (runs[-1][0], column + 1, runs[-1][2])
        else:
            runs.append((column, column + 1, share))
    return runs


def _nice_step(rough_us: float) -> float:
    """Round a tick interval up to 1, 2 or 5 times a power of ten."""
    power = 10 ** math.floor(math.log10(max(rough_us, 1e-3)))
    for factor in (1, 2, 5, 10):
        if rough_us <= factor * power:
            return factor * power
    return 10 * power


def _unit(span_us: float) -> Tuple[str, float]:
    if span_us >= 2e6:
        return "s", 1e6
    if span_us >= 2e3:
        return "ms", 1e3
    return "us", 1.0


def _format_us(value_us: float) -> str:
    unit, divisor = _unit(value_us * 2)
    return "%g %s" % (round(value_us / divisor, 3), unit)

"""``python -m benchmarks summary DIR [--into DOC]``: put a run's summary and charts into a doc.

docs/BENCHMARKS.md opens with the summary table and the charts of the
latest full run (``python -m benchmarks all --report docs/benchmarks``).
Copying them by hand would let the doc and the committed report drift
apart, so this writes the block from ``DIR/results.json`` and the charts
found in ``DIR/charts/``, and replaces whatever sits between the two
markers below in DOC (or prints it when no DOC is given). Everything
outside the markers, the raw tables of each issue, is left alone.

Links are made relative to DOC, so the charts show on GitHub and in any
markdown viewer that renders the file where it lies.
"""

import argparse
import os
import sys

from .document import md, summary_markdown
from .schema import load

START = "<!-- summary: written by python -m benchmarks summary; do not edit by hand -->"
END = "<!-- end of summary -->"
#: Which charts follow the table, in this order (those a run did not write are left out).
CHART_ORDER = (
    ("echo-cpu.svg", "echo: server CPU per request by model"),
    ("echo-rate.svg", "echo: requests/s by model"),
    ("scaling.svg", "req/s and p99 from 1 to 10,000 connections"),
    ("echo-latency.svg", "echo: latency percentiles by model"),
    ("echo-memory.svg", "memory per idle connection by model"),
    ("http-cpu.svg", "HTTP/1.1: server CPU per request by model"),
    ("http-latency.svg", "HTTP/1.1: latency percentiles by model"),
    ("websocket-cpu.svg", "WebSocket: server CPU per message by model"),
)


def summary_block(report_dir, doc_dir):
    """The markdown between the markers: provenance, the summary table, the charts."""
    results = load(os.path.join(report_dir, "results.json"))
    env = results["environment"]
    link = os.path.relpath(report_dir, doc_dir).replace(os.sep, "/")
    minutes, seconds = divmod(int(round(results["seconds"])), 60)
    lines = [START, "",
             "Latest full run: `%s`, started %s, %d:%02d; %s, %s cores, %s %s, %s. "
             "The whole report, with every row and the environment, is [%s/report.md](%s/"
             "report.md); its raw figures are [%s/results.json](%s/results.json)."
             % (md(results["generator"]), md(results["started"]), minutes, seconds,
                md(env.get("cpu") or "CPU not recorded"), md(env.get("cores")),
                md(env.get("implementation") or "Python"), md(env.get("python")),
                md(env.get("selector")), link, link, link, link), "",
             summary_markdown(results).rstrip("\n"), ""]
    charts = os.path.join(report_dir, "charts")
    for name, caption in CHART_ORDER:
        if os.path.exists(os.path.join(charts, name)):
            lines += ["![%s](%s/charts/%s)" % (caption, link, name), ""]
    return "\n".join(lines + [END]) + "\n"


def replace_block(text, block):
    """``text`` with the marked block replaced by ``block``; ValueError without both markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError("the document has no summary markers; put these two lines where "
                         "the summary belongs:\n%s\n%s" % (START, END))
    return text[:start] + block + "\n" + text[end + len(END):].lstrip("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks summary",
                                     description="Write a run's summary table and charts "
                                                 "into a markdown document.")
    parser.add_argument("report", metavar="DIR", help="what `all --report DIR` wrote")
    parser.add_argument("--into", metavar="DOC", help="replace the marked block of DOC "
                        "(default: print the block)")
    args = parser.parse_args(argv)
    try:
        if args.into is None:
            sys.stdout.write(summary_block(args.report, os.getcwd()))
            return 0
        with open(args.into, encoding="utf-8") as handle:
            text = handle.read()
        updated = replace_block(text, summary_block(args.report,
                                                    os.path.dirname(os.path.abspath(args.into))))
    except (OSError, ValueError) as error:
        print("summary: %s" % error, file=sys.stderr)
        return 1
    with open(args.into, "w", encoding="utf-8") as handle:
        handle.write(updated)
    print("summary of %s written into %s" % (args.report, args.into))
    return 0

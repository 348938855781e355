"""``python -m benchmarks compare OLD.json NEW.json``: did my change make it faster?

Every cell (suite, scenario, model, metric) present in both files is listed
with new/old and a verdict that knows which way is better for the metric:
higher for ``*_per_second``; lower for ``*_us*`` (time), ``*_seconds``,
``*_bytes*``, ``errors`` and ``lost``; ``loadgen_busy``, ``connections`` and
other numbers are informational. Within the tolerance (3%) the verdict is
"same". Time and rate metrics are "faster"/"slower"; memory and error
counts "better"/"worse"; informational ones "info". Cells in one file only
are listed as "only in old" / "only in new".

Both files are validated (``schema.load``): a version-1 results document
from ``python -m benchmarks all``, or a single-suite file from
``python -m benchmarks SUITE --json FILE``.
"""

import argparse
import collections
import sys

from .schema import direction, is_number, is_ok, load, metric_keys

TOLERANCE = 0.03

#: One compared cell. ratio = new / old (None when it cannot be formed).
Cell = collections.namedtuple("Cell", "suite scenario model metric old new ratio verdict")


def cells(results):
    """{(suite, scenario, model, metric): value} for every numeric figure of ok rows.

    A second row with the same scenario and model gets "#2" after its model.
    """
    out = {}
    for suite, body in results["suites"].items():
        seen = collections.Counter()
        for row in body["results"]:
            if not is_ok(row.get("status")):
                continue
            seen[row["scenario"], row["model"]] += 1
            count = seen[row["scenario"], row["model"]]
            model = row["model"] if count == 1 else "%s #%d" % (row["model"], count)
            for key in metric_keys(row):
                value = row[key]
                if is_number(value) or (value is None and direction(key) != 0):
                    out[suite, row["scenario"], model, key] = value
    return out


def verdict(metric, old, new, tolerance=TOLERANCE):
    """(ratio, verdict) of new against old for ``metric``."""
    if old is None or new is None:
        return None, "n/a"
    way = direction(metric)
    if old == 0:
        ratio = 1.0 if new == 0 else None
    else:
        ratio = new / old
    if way == 0:
        return ratio, "info"
    speed = not ("bytes" in metric or metric in ("errors", "lost"))
    good, bad = ("faster", "slower") if speed else ("better", "worse")
    if ratio is not None and abs(ratio - 1) <= tolerance:
        return ratio, "same"
    if ratio is None:                                   # from 0 to something
        improved = (new > 0) == (way > 0)
    else:
        improved = (ratio > 1) == (way > 0)
    return ratio, good if improved else bad


def compare(old, new, tolerance=TOLERANCE):
    """Cells of ``new`` against ``old`` (two version-1 documents), in ``new``'s order.

    Cells in both come first, with their ratio and verdict; then cells only
    in old (verdict "only in old"), then only in new ("only in new").
    """
    before, after = cells(old), cells(new)
    rows, only_new = [], []
    for key, value in after.items():
        if key in before:
            ratio, word = verdict(key[3], before[key], value, tolerance)
            rows.append(Cell(*key, old=before[key], new=value, ratio=ratio, verdict=word))
        else:
            only_new.append(Cell(*key, old=None, new=value, ratio=None, verdict="only in new"))
    only_old = [Cell(*key, old=value, new=None, ratio=None, verdict="only in old")
                for key, value in before.items() if key not in after]
    return rows + only_old + only_new


def _figure(value):
    if value is None:
        return "-"
    if isinstance(value, int) or abs(value) >= 1000:
        return "{:,.0f}".format(value)
    return "%.4g" % value


def main(argv=None):
    """Print the comparison; return 0, or 2 when a file cannot be read or compared."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks compare",
        description="Compare two results files cell by cell: new/old per metric.")
    parser.add_argument("old", help="results.json of the baseline")
    parser.add_argument("new", help="results.json of the change")
    parser.add_argument("--tolerance", type=float, default=100 * TOLERANCE, metavar="PCT",
                        help="a change within this many percent is 'same' (default 3)")
    parser.add_argument("--all", action="store_true",
                        help="also list informational cells that did not change "
                             "(connections, sizes)")
    parser.add_argument("--changed", action="store_true",
                        help="list only cells that changed beyond the tolerance, or are in "
                             "one file only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        old, new = load(args.old), load(args.new)
    except ValueError as error:
        print("compare: %s" % error, file=sys.stderr)
        return 2
    rows = compare(old, new, args.tolerance / 100.0)
    if args.changed:
        shown = [row for row in rows if row.verdict not in ("same", "info", "n/a")]
    else:
        shown = [row for row in rows if args.all or not (row.verdict == "info"
                                                         and row.old == row.new)]
    header = ["suite", "scenario", "model", "metric", "old", "new", "new/old", "verdict"]
    table = [[row.suite, row.scenario, row.model, row.metric, _figure(row.old),
              _figure(row.new), "-" if row.ratio is None else "%.3f" % row.ratio, row.verdict]
             for row in shown]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *table)]
    right = {4, 5, 6}

    def line(cells):
        return "  ".join(("%*s" if i in right else "%-*s") % (w, c)
                         for i, (w, c) in enumerate(zip(widths, cells))).rstrip()
    print("%s -> %s (new/old; within ±%g%% is 'same')" % (args.old, args.new, args.tolerance))
    print(line(header))
    print("-" * len(line(header)))
    for cells_ in table:
        print(line(cells_))
    counts = collections.Counter(row.verdict for row in rows)
    order = ["faster", "slower", "better", "worse", "same", "info", "n/a", "only in old",
             "only in new"]
    print()
    print(", ".join("%d %s" % (counts[word], word) for word in order if counts[word])
          or "no cells to compare")
    hidden = len(rows) - len(shown)
    if hidden and args.changed:
        print("(%d unchanged cell%s not shown)" % (hidden, "" if hidden == 1 else "s"))
    elif hidden:
        print("(%d unchanged informational cell%s not shown; --all shows them)"
              % (hidden, "" if hidden == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One asyncio program on several event loops: the suites' side-by-side table and row tags.

Some models are the same asyncio program run on different loops
(``models.programs_for``): the Protocol echo on asyncio's loop
(``asyncio-protocol``), on reactor.aio (``reactor-aio-protocol``) and on
uvloop (``uvloop``). Their rows sit in the suite's per-scenario tables
beside every other model; this module adds the question those tables do
not answer at a glance, "the program held fixed, what does the loop
change?"::

    Same asyncio program on each event loop
    scenario        program                asyncio req/s  asyncio us/req  reactor.aio req/s  ...
    100 conn x 64 B asyncio Protocol echo  52000          20.1            61000 (1.17x)      ...

Each loop's cell is its median and, in brackets, its figure over asyncio's
loop in the same round, the median of those per-round ratios (``paired``):
a slow drift of the machine cancels, as in the other tables. req/s higher
is better, server µs per request lower.

``tag_rows`` writes ``program`` and ``loop`` into the suite's JSON rows, so
the report (``report/document.py``) can draw the same comparison from
results.json alone.
"""

from .common import print_table
from .harness import medians_or_why, paired

#: the loop every other is measured against, then the others in column order
BASE_LOOP = "asyncio"
LOOP_ORDER = ("asyncio", "reactor.aio", "uvloop")
RATE = "requests_per_second"
CPU = "server_cpu_us_per_request"


def program_table(programs, labels, runs, status, why_not=lambda model: None):
    """Print each program of ``programs`` on each of its loops, per scenario of ``labels``.

    ``programs``: [(program, [(loop, model), ...])] from ``programs_for``;
    ``runs`` and ``status`` as ``round_robin`` filled them, keyed (label,
    model); ``why_not(model)``: why a model did not run (the registry's
    ``available``), for one the suite left out. Prints nothing without a
    program.
    """
    if not programs:
        return
    loops = sorted({loop for _, members in programs for loop, _ in members},
                   key=lambda loop: (LOOP_ORDER + (loop,)).index(loop))
    header = ["scenario", "program"]
    for loop in loops:
        header += ["%s req/s" % loop, "%s us/req" % loop]
    rows, notes = [], []
    for label in labels:
        for program, members in programs:
            by_loop = dict(members)
            base = runs.get((label, by_loop.get(BASE_LOOP)), ())
            row = [label, program]
            for loop in loops:
                row += loop_cells(label, by_loop.get(loop), loop, base, runs, status, why_not,
                                  notes)
            rows.append(row)
    print_table("Same asyncio program on each event loop (the loop is the only difference)",
                header, rows,
                ["(N.NNx): that loop's figure / asyncio's loop's, the median of each round's "
                 "own ratio; req/s: higher is better, us/req: lower is better"]
                + sorted(set(notes)))


def loop_cells(label, model, loop, base, runs, status, why_not, notes):
    """The two cells (req/s, us/req) of ``model`` running a program on ``loop``."""
    if model is None:
        return ["", ""]
    if (label, model) not in runs:
        why = why_not(model)
        return ["skipped: %s" % why if why else "not run", ""]
    cell, why = medians_or_why(runs, status, (label, model), notes)
    if cell is None:
        return [why, ""]
    rate, cpu = "%.0f" % cell[RATE], "%.1f" % cell[CPU]
    if loop != BASE_LOOP:
        rate += ratio_text(paired(runs[label, model], base, RATE))
        cpu += ratio_text(paired(runs[label, model], base, CPU))
    return [rate, cpu]


def ratio_text(ratio):
    return "" if ratio is None else " (%.2fx)" % ratio


def tag_rows(rows, programs, labels=None):
    """Add ``program`` and ``loop`` to each JSON row of a model in ``programs`` (only in the
    scenarios of ``labels``, when given: those where the model runs that program)."""
    where = {model: (program, loop) for program, members in programs for loop, model in members}
    for row in rows:
        if row.get("model") in where and (labels is None or row.get("scenario") in labels):
            row["program"], row["loop"] = where[row["model"]]
    return rows

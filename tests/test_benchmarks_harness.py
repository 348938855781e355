"""The benchmark harness with fake measurements: round-robin order, medians, ratios, skips.

No server runs here; ``tests/test_benchmarks_all.py`` has the smoke run of a real suite.
"""

from benchmarks import harness


def fake_measure(calls, results, failing=()):
    """A ``measure(scenario, model)`` that records its calls and returns ``results`` in turn."""
    def measure(scenario, model):
        calls.append((scenario, model))
        if (scenario, model) in failing:
            raise RuntimeError("%s would not start" % model)
        value = results[scenario, model].pop(0)
        return {"requests_per_second": value, "server_cpu_us_per_request": 1e6 / value}, "ok"
    return measure


def test_round_robin_runs_each_job_once_a_round_in_turn():
    """Round 1 runs every job once, then round 2: a drift of the machine hits all alike."""
    jobs = [("a", "reactor"), ("a", "asyncio"), ("b", "reactor")]
    runs = {job: [] for job in jobs}
    calls = []
    values = {job: [100, 200, 300] for job in jobs}
    harness.round_robin(runs, {}, 3, fake_measure(calls, values))
    assert calls == jobs * 3
    assert [run["requests_per_second"] for run in runs["a", "reactor"]] == [100, 200, 300]


def test_medians_are_taken_per_figure_over_the_runs_that_worked():
    """The median of each figure, over good runs only; none good: the reason instead."""
    runs = {("a", "m"): [{"requests_per_second": 10.0}, None, {"requests_per_second": 30.0},
                         {"requests_per_second": 20.0}]}
    medians, why = harness.medians_or_why(runs, {}, ("a", "m"), [])
    assert (medians, why) == ({"requests_per_second": 20.0}, None)
    notes = []
    assert harness.medians_or_why({("a", "x"): [None]}, {("a", "x"): "failed: boom"},
                                  ("a", "x"), notes) == (None, "failed (below)")
    assert notes == ["x failed: boom"]


def test_a_model_that_fails_its_first_run_is_not_run_again_and_says_why():
    """A first failure goes into ``status`` (not retried); the other models go on."""
    runs = {("a", "reactor"): [], ("a", "broken"): []}
    status, calls = {}, []
    values = {("a", "reactor"): [1, 2]}
    harness.round_robin(runs, status, 2, fake_measure(calls, values, failing=[("a", "broken")]))
    assert calls == [("a", "reactor"), ("a", "broken"), ("a", "reactor")]
    assert status == {("a", "broken"): "failed: broken would not start"}
    assert runs["a", "broken"] == [None, None]


def test_skipped_models_are_never_measured():
    """A job already in ``status`` (a model not installed) is skipped, with its reason kept."""
    runs = {("a", "reactor"): [], ("a", "uvloop"): []}
    status = {("a", "uvloop"): "skipped: uvloop is not installed"}
    calls = []
    harness.round_robin(runs, status, 2, fake_measure(calls, {("a", "reactor"): [5, 6]}))
    assert calls == [("a", "reactor")] * 2
    rows = harness.scenario_results("a", ["reactor", "uvloop"],
                                    {"reactor": {"requests_per_second": 5.5}}, runs, status)
    assert rows[1]["status"] == "skipped: uvloop is not installed"
    assert rows[0]["status"] == "ok" and rows[0]["requests_per_second"] == 5.5


def test_paired_is_the_median_of_each_rounds_own_ratio():
    """Ratios are taken round by round (both models saw the same machine), then the median."""
    mine = [{"requests_per_second": 200.0}, {"requests_per_second": 90.0}, None,
            {"requests_per_second": 300.0}]
    other = [{"requests_per_second": 100.0}, {"requests_per_second": 100.0},
             {"requests_per_second": 100.0}, {"requests_per_second": 100.0}]
    assert harness.paired(mine, other) == 2.0                 # ratios 2.0, 0.9, 3.0
    assert harness.paired([None], other) is None


def test_suites_import_the_harness_never_each_other():
    """No suite imports another suite (the harness, common, models and report are shared)."""
    import ast
    import os
    from benchmarks.__main__ import SUITES
    suites = {module.split(".")[1] for module, _ in SUITES.values()}
    folder = os.path.dirname(harness.__file__)
    for name in suites:
        tree = ast.parse(open(os.path.join(folder, name + ".py")).read())
        imported = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
        assert not imported & (suites - {name}), (name, imported & suites)


# -- one asyncio program on several loops (programs.py) ----------------------------------------

PROGRAMS = [("asyncio Protocol echo", [("asyncio", "asyncio-protocol"),
                                       ("reactor.aio", "reactor-aio-protocol"),
                                       ("uvloop", "uvloop")])]


def rate_and_cpu(rate, cpu):
    return {"requests_per_second": rate, "server_cpu_us_per_request": cpu}


def test_the_program_table_sets_each_loop_beside_asyncios_with_paired_ratios(capsys):
    """Each loop's median, and in brackets the median of its per-round ratio to asyncio's
    loop; a loop not installed says so."""
    from benchmarks.programs import program_table
    runs = {("a", "asyncio-protocol"): [rate_and_cpu(100.0, 10.0), rate_and_cpu(200.0, 10.0)],
            ("a", "reactor-aio-protocol"): [rate_and_cpu(150.0, 8.0), rate_and_cpu(240.0, 9.0)]}
    program_table(PROGRAMS, ["a"], runs, {}, why_not=lambda model: "uvloop not installed")
    out = capsys.readouterr().out
    header, rule, row = out.strip().splitlines()[1:4]
    assert header.split() == ["scenario", "program", "asyncio", "req/s", "asyncio", "us/req",
                              "reactor.aio", "req/s", "reactor.aio", "us/req", "uvloop",
                              "req/s", "uvloop", "us/req"]
    # rates 195 median; ratios 1.5 and 1.2 -> 1.35; CPU 8.5, ratios 0.8 and 0.9 -> 0.85
    assert row.split() == ["a", "asyncio", "Protocol", "echo", "150", "10.0", "195", "(1.35x)",
                           "8.5", "(0.85x)", "skipped:", "uvloop", "not", "installed"]


def test_the_program_table_reports_a_loop_that_failed_and_prints_nothing_without_programs(
        capsys):
    """A failed loop shows "failed (below)" with its reason in the notes; no program, no
    table."""
    from benchmarks.programs import program_table
    runs = {("a", "asyncio-protocol"): [rate_and_cpu(100.0, 10.0)],
            ("a", "reactor-aio-protocol"): [None]}
    status = {("a", "reactor-aio-protocol"): "failed: server did not start"}
    program_table(PROGRAMS[:1], ["a"], runs, status)
    out = capsys.readouterr().out
    assert "failed (below)" in out and "reactor-aio-protocol failed: server did not start" in out
    program_table([], ["a"], runs, status)
    assert capsys.readouterr().out == ""


def test_rows_of_a_program_are_tagged_with_it_and_their_loop():
    """tag_rows marks each program model's JSON rows (in the scenarios given) and no other."""
    from benchmarks.programs import tag_rows
    rows = [{"scenario": "hello", "model": "uvloop"}, {"scenario": "static", "model": "uvloop"},
            {"scenario": "hello", "model": "reactor"}]
    tag_rows(rows, PROGRAMS, ["hello"])
    assert rows == [{"scenario": "hello", "model": "uvloop", "program": "asyncio Protocol echo",
                     "loop": "uvloop"},
                    {"scenario": "static", "model": "uvloop"},
                    {"scenario": "hello", "model": "reactor"}]

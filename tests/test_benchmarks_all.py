"""``python -m benchmarks all``: a real suite in its own process, merged into one report.

The smoke run is the scaling suite with two models at 1 and 10 connections
(a few seconds); the full plans run only by hand (``--quick`` takes ~3 minutes).
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from benchmarks import all as run_all
from benchmarks.report import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_quick_smoke_run_of_one_suite_with_two_models_writes_the_report(tmp_path, monkeypatch):
    """all --quick with a one-suite plan: results.json validates, report.md names both models
    and the environment, the charts are SVG, and the suite's log is kept."""
    plan = [("scaling", ["--quick", "--models", "reactor,asyncio-protocol", "--counts", "1,10"],
             8)]
    monkeypatch.setattr(run_all, "QUICK_PLAN", plan)
    args = type("Args", (), {"quick": True})()
    monkeypatch.chdir(ROOT)
    assert run_all.main(args, ["--report", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    validate(results)
    rows = results["suites"]["scaling"]["results"]
    assert {(row["model"], row["connections"]) for row in rows} == {
        (model, count) for model in ("reactor", "asyncio-protocol") for count in (1, 10)}
    assert all(row["requests_per_second"] > 0 for row in rows)
    environment = results["environment"]
    assert environment["cores"] == os.cpu_count() and environment["ulimit_n"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "reactor" in report and "asyncio-protocol" in report and "Kernel" in report
    charts = list((tmp_path / "charts").glob("*.svg"))
    assert charts
    for chart in charts:
        ElementTree.parse(str(chart))
    assert "round 1" in (tmp_path / "logs" / "scaling.txt").read_text()


def test_a_failing_suite_costs_only_its_row(tmp_path, monkeypatch):
    """A suite that exits non-zero is reported as failed, with its last line; the run goes on."""
    plan = [("scaling", ["--counts", "not-a-number"], 1)]
    monkeypatch.setattr(run_all, "QUICK_PLAN", plan)
    monkeypatch.chdir(ROOT)
    args = type("Args", (), {"quick": True})()
    assert run_all.main(args, ["--report", str(tmp_path)]) == 1       # every suite failed
    suite = json.loads((tmp_path / "results.json").read_text())["suites"]["scaling"]
    assert suite["status"].startswith("failed: exit 2: usage: python -m benchmarks scaling")
    assert suite["results"] == []


def test_compare_prints_a_ratio_per_cell(tmp_path):
    """``python -m benchmarks compare OLD NEW``: the same cell, twice as fast, says so."""
    def document(rate):
        return {"schema": 1, "generator": "test", "started": "", "seconds": 1.0, "quick": True,
                "environment": {}, "suites": {"echo": {"title": "echo", "status": "ok",
                                                       "results": [{"scenario": "100 conn",
                                                                    "model": "reactor",
                                                                    "requests_per_second": rate}]}}}
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document(100.0)))
    new.write_text(json.dumps(document(200.0)))
    result = subprocess.run([sys.executable, "-m", "benchmarks", "compare", str(old), str(new)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "2.00" in result.stdout and "faster" in result.stdout


def test_a_rows_program_and_loop_survive_into_results_json():
    """clean() keeps the text fields the report's program table reads, and drops others."""
    row = {"scenario": "hello", "model": "aiohttp-reactor-aio", "program": "aiohttp hello",
           "loop": "reactor.aio", "note": "dropped", "requests_per_second": 1.0}
    assert run_all.clean(row) == {"scenario": "hello", "model": "aiohttp-reactor-aio",
                                  "program": "aiohttp hello", "loop": "reactor.aio",
                                  "requests_per_second": 1.0}

"""The benchmark report: results.json schema, SVG charts, report.md and compare (no servers)."""

import copy
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest

from benchmarks.report import SCHEMA_VERSION, compare, summary_rows, validate, write_report
from benchmarks.report.document import program_rows, summary_markdown
from benchmarks.report import embed, svg
from benchmarks.report.compare import main as compare_main, verdict
from benchmarks.report.schema import from_suite_json, load

NS = "{http://www.w3.org/2000/svg}"


def parse(document):
    root = ET.fromstring(document)
    assert root.tag == NS + "svg"
    assert root.get("viewBox")
    return root


def texts(root):
    return [element.text for element in root.iter(NS + "text") if element.text]


def bars(root):
    return [rect for rect in root.iter(NS + "rect") if rect.get("class") == "bar"]


def row(scenario, model, **figures):
    return dict(figures, scenario=scenario, model=model)


def results(**overrides):
    """A small valid document: echo (2 scenarios, a skipped row, idle memory), scaling, http."""
    echo = [
        row("100 conn x 64 B", "reactor", requests_per_second=120000.0,
            server_cpu_us_per_request=8.0, p50_us=700, p90_us=1000, p99_us=1500, p999_us=2000,
            loadgen_busy=0.95, errors=0, connections=100, runs=[{"requests_per_second": 1.0}]),
        row("100 conn x 64 B", "asyncio-streams", requests_per_second=80000.0,
            server_cpu_us_per_request=12.0, p50_us=1100, p99_us=1300, loadgen_busy=1.0),
        row("100 conn x 64 B", "asyncio-protocol", requests_per_second=100000.0,
            server_cpu_us_per_request=10.0, p50_us=800, p90_us=1100, p99_us=1700,
            p999_us=2100, loadgen_busy=0.97, errors=0, connections=100),
        row("100 conn x 64 B", "selectors-minimal", requests_per_second=125000.0,
            server_cpu_us_per_request=7.5, p50_us=680, p99_us=1400, loadgen_busy=0.99),
        row("100 conn x 64 B", "uvloop", requests_per_second=130000.0,
            server_cpu_us_per_request=7.0, p50_us=650, p99_us=1350, loadgen_busy=0.99),
        row("100 conn x 64 B", "gevent", requests_per_second=150000.0,
            server_cpu_us_per_request=13.0, p50_us=600, p99_us=1800, loadgen_busy=0.99),
        row("100 conn x 64 B", "threads", requests_per_second=200000.0,
            server_cpu_us_per_request=5.0, loadgen_busy=0.5),
        row("100 conn x 64 B", "twisted", status="skipped: twisted is not installed"),
        row("1000 conn x 64 B", "reactor", requests_per_second=100000.0,
            server_cpu_us_per_request=9.0, p99_us=18000),
        row("1000 conn x 64 B", "asyncio-protocol", requests_per_second=90000.0,
            server_cpu_us_per_request=11.0, p99_us=20000),
        row("idle memory", "reactor", connections=10000, heap_bytes_per_connection=727,
            rss_bytes_per_connection=2100),
        row("idle memory", "asyncio-protocol", connections=10000,
            heap_bytes_per_connection=1735, rss_bytes_per_connection=None),
    ]
    scaling = []
    for connections, rate in ((1, 40000.0), (10, 90000.0), (100, 120000.0), (1000, 100000.0)):
        for model, factor in (("reactor", 1.0), ("asyncio-protocol", 0.9)):
            scaling.append(row("%d conn" % connections, model, connections=connections,
                               requests_per_second=rate * factor, p99_us=connections * 20.0,
                               server_cpu_us_per_request=1e6 / rate))
    scaling.append(row("10000 conn", "reactor", connections=10000,
                       status="skipped: ulimit -n 1024 is below 10,100"))
    document = {
        "schema": SCHEMA_VERSION, "generator": "python -m benchmarks all --quick",
        "started": "2026-11-30T20:00:00Z", "seconds": 123.4, "quick": True,
        "environment": {"cpu": "Test CPU 9000", "cores": 2, "kernel": "6.1.0",
                        "python": "3.11.7", "implementation": "CPython",
                        "platform": "Linux-6.1.0-x86_64", "selector": "EpollSelector",
                        "ulimit_n": 1024,
                        "loadgens": {"echo": "loadgen.c (C, epoll)", "http": "wrk 4.2.0"},
                        "loadgen_saturated": ["echo / 100 conn x 64 B / reactor"]},
        "suites": {
            "echo": {"title": "TCP echo", "status": "ok", "seconds": 40.2, "results": echo},
            "scaling": {"title": "Scaling", "status": "ok", "seconds": 20.0,
                        "results": scaling},
            "http": {"title": "HTTP keep-alive", "status": "skipped: wrk is not installed",
                     "results": []},
        },
    }
    document.update(overrides)
    return document


# -- SVG -------------------------------------------------------------------------------------

def test_a_bar_chart_is_well_formed_with_axes_labels_units_and_a_legend():
    root = parse(svg.bar_chart("Server CPU", ["reactor", "asyncio-protocol", "uvloop"],
                               {"100 conn": [8.0, 10.0, 7.0], "1000 conn": [9.0, 11.0, None]},
                               "µs", quantity="server CPU per request",
                               subtitle="lower is better"))
    words = texts(root)
    for name in ("reactor", "asyncio-protocol", "uvloop", "Server CPU", "100 conn", "1000 conn"):
        assert name in words
    assert "server CPU per request (µs)" in words             # value axis with its unit
    assert "model" in words                                   # category axis
    axes = [line for line in root.iter(NS + "line") if "axis" in (line.get("class") or "")]
    assert len(axes) == 2
    legend = [g for g in root.iter(NS + "g") if g.get("class") == "legend"][0]
    assert [t.text for t in legend.iter(NS + "text")] == ["100 conn", "1000 conn"]
    assert any(t.get("class") == "tick" for t in root.iter(NS + "text"))
    assert len(bars(root)) == 5 and "n/a" in words            # None: text, not a bar


@pytest.mark.parametrize("horizontal", [True, False])
def test_bar_lengths_are_proportional_to_values_from_zero(horizontal):
    root = parse(svg.bar_chart("t", ["a", "b"], {"x": [10, 20]}, "req/s",
                               horizontal=horizontal))
    first, second = bars(root)
    size = "width" if horizontal else "height"
    assert abs(2 * float(first.get(size)) - float(second.get(size))) < 1
    start = "x" if horizontal else "y"
    if horizontal:                                            # both start on the axis at 0
        assert first.get(start) == second.get(start)
    else:
        assert abs(float(first.get("y")) + float(first.get("height"))
                   - float(second.get("y")) - float(second.get("height"))) < 0.01


def test_a_log_axis_says_so_and_bars_grow_with_the_log_of_the_value():
    root = parse(svg.bar_chart("lat", ["m"], {"p50": [10.0], "p99": [100.0],
                                              "p99.9": [1000.0]}, "µs", quantity="latency",
                               horizontal=False, log=True))
    assert "latency (µs, log scale)" in texts(root)
    heights = [float(rect.get("height")) for rect in bars(root)]
    # the axis starts at 10: log10(v/10) is 0, 1, 2
    assert heights[0] < 1 and abs(heights[2] - 2 * heights[1]) < 1


def test_auto_log_is_linear_for_close_values():
    root = parse(svg.bar_chart("lat", ["m"], {"p50": [20.0], "p99": [40.0]}, "µs",
                               quantity="latency", log="auto"))
    assert "latency (µs)" in texts(root)


def test_text_is_escaped():
    document = svg.bar_chart("a<b&c chart", ["a<b&c", "reactor"], {"s&p": [1.0, 2.0]}, "µs")
    assert "a&lt;b&amp;c" in document
    root = parse(document)
    assert "a<b&c" in texts(root) and "s&p" in texts(root)


def test_a_line_chart_has_a_log_x_axis_one_line_per_model_and_skips_missing_points():
    root = parse(svg.line_chart("scaling", [1, 10, 100, 1000, 10000],
                                {"reactor": [40e3, 90e3, 120e3, 100e3, None],
                                 "a<b&c": [35e3, 80e3, 110e3, 90e3, 80e3]},
                                "connections", "requests/s (req/s)"))
    words = texts(root)
    assert "connections (log scale)" in words and "requests/s (req/s)" in words
    for tick in ("1", "10", "100", "1,000", "10,000"):
        assert tick in words
    assert "reactor" in words and "a<b&c" in words
    lines = [p for p in root.iter(NS + "polyline")]
    assert len(lines) == 2
    points = [c for c in root.iter(NS + "circle") if c.get("class") == "point"]
    assert len(points) == 9                                   # reactor's 10,000 is missing
    xs = {float(c.get("data-x")): float(c.get("cx")) for c in points}
    # log axis: each decade is the same distance
    assert abs((xs[10] - xs[1]) - (xs[1000] - xs[100])) < 0.01
    ys = {(c.get("data-series"), float(c.get("data-x"))): float(c.get("cy")) for c in points}
    bottom = max(float(line.get("y1")) for line in root.iter(NS + "line")
                 if line.get("class") == "axis x-axis")
    # linear y from 0: 40k is twice as far from the axis as 20k would be -> check 40k vs 80k
    a = bottom - ys["reactor", 1.0]
    b = bottom - ys["a<b&c", 10000.0]
    assert abs(2 * a - b) < 1


def test_panels_nest_charts_in_one_document():
    inner = [svg.bar_chart("one", ["reactor"], {"x": [1.0]}, "µs"),
             svg.bar_chart("two", ["uvloop"], {"x": [2.0]}, "µs")]
    document = svg.panels("both", inner)
    root = parse(document)
    assert "ns0" not in document
    assert {"both", "one", "two", "reactor", "uvloop"} <= set(texts(root))
    nested = [e for e in root if e.tag == NS + "svg"]
    assert len(nested) == 2 and float(nested[1].get("y")) > float(nested[0].get("y"))


# -- schema -------------------------------------------------------------------------------------

def test_a_valid_document_passes():
    document = results()
    assert validate(document) is document


@pytest.mark.parametrize("change, path, what", [
    (lambda d: d.update(schema=2), "schema", "version 2"),
    (lambda d: d.pop("suites"), "suites", "missing"),
    (lambda d: d.pop("quick"), "quick", "missing"),
    (lambda d: d["suites"]["echo"].pop("status"), "suites.echo.status", "missing"),
    (lambda d: d["suites"]["echo"].update(status="broken"), "suites.echo.status", "skipped"),
    (lambda d: d["suites"]["echo"]["results"][1].pop("model"), "suites.echo.results[1].model",
     "missing"),
    (lambda d: d["suites"]["echo"]["results"][0].update(p99_us="fast"),
     "suites.echo.results[0].p99_us", "number"),
    (lambda d: d["suites"]["echo"]["results"][0].update(errors=True),
     "suites.echo.results[0].errors", "number"),
    (lambda d: d["suites"]["echo"]["results"][0].update(requests_per_second=float("nan")),
     "suites.echo.results[0].requests_per_second", "finite"),
    (lambda d: d["environment"].update(cores="two"), "environment.cores", "integer"),
])
def test_invalid_documents_fail_naming_the_path(change, path, what):
    document = results()
    change(document)
    with pytest.raises(ValueError) as caught:
        validate(document)
    message = str(caught.value)
    assert message.startswith("results.json: %s: " % path)
    assert what in message


def test_unknown_numeric_keys_and_text_fields_are_kept():
    document = results()
    document["suites"]["echo"]["results"][0].update(lines_per_second=5.0, detail="note",
                                                    samples=[1.0, 2.0])
    validate(document)


def test_a_single_suite_json_file_is_wrapped():
    wrapped = from_suite_json({"suite": "udp", "environment": {"cpus": 2},
                               "results": [{"size": 64, "model": "reactor-udp",
                                            "requests_per_second": 1.0}]})
    validate(wrapped)
    assert wrapped["suites"]["udp"]["results"][0]["scenario"] == "size=64"
    assert wrapped["environment"]["cores"] == 2


# -- compare ------------------------------------------------------------------------------------

def test_verdicts_know_which_way_is_better():
    assert verdict("requests_per_second", 100.0, 110.0) == (1.1, "faster")
    assert verdict("requests_per_second", 100.0, 90.0)[1] == "slower"
    assert verdict("server_cpu_us_per_request", 10.0, 9.0)[1] == "faster"
    assert verdict("p99_us", 10.0, 12.0)[1] == "slower"
    assert verdict("rss_bytes_per_connection", 100.0, 50.0)[1] == "better"
    assert verdict("errors", 0, 3)[1] == "worse"
    assert verdict("errors", 0, 0) == (1.0, "same")
    assert verdict("requests_per_second", 100.0, 102.9)[1] == "same"
    assert verdict("requests_per_second", 100.0, 103.1)[1] == "faster"
    assert verdict("loadgen_busy", 0.5, 1.0) == (2.0, "info")


def test_compare_lists_common_cells_and_cells_on_one_side():
    old, new = results(), results()
    rows = new["suites"]["echo"]["results"]
    rows[0]["requests_per_second"] = 132000.0                 # 1.1x: faster
    rows[0]["server_cpu_us_per_request"] = 8.8                # 1.1x: slower
    rows[2]["p99_us"] = 1700 * 1.01                           # same
    del rows[3]                                               # selectors-minimal: only in old
    rows.append(row("100 conn x 64 B", "trio", requests_per_second=1.0))
    cells = {(c.suite, c.scenario, c.model, c.metric): c for c in compare(old, new)}
    cell = cells["echo", "100 conn x 64 B", "reactor", "requests_per_second"]
    assert (cell.old, cell.new, round(cell.ratio, 3), cell.verdict) == \
        (120000.0, 132000.0, 1.1, "faster")
    assert cells["echo", "100 conn x 64 B", "reactor", "server_cpu_us_per_request"].verdict \
        == "slower"
    assert cells["echo", "100 conn x 64 B", "asyncio-protocol", "p99_us"].verdict == "same"
    assert cells["echo", "100 conn x 64 B", "selectors-minimal", "p99_us"].verdict \
        == "only in old"
    assert cells["echo", "100 conn x 64 B", "trio", "requests_per_second"].verdict \
        == "only in new"
    assert ("echo", "100 conn x 64 B", "twisted", "requests_per_second") not in cells


def test_compare_main_prints_a_table_and_counts(tmp_path, capsys):
    old, new = results(), results()
    new["suites"]["echo"]["results"][0]["requests_per_second"] = 240000.0
    for name, document in (("old.json", old), ("new.json", new)):
        (tmp_path / name).write_text(json.dumps(document))
    assert compare_main([str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    out = capsys.readouterr().out
    line = [l for l in out.splitlines() if "reactor" in l and "requests_per_second" in l
            and "100 conn" in l][0]
    assert "120,000" in line and "240,000" in line and "2.000" in line and "faster" in line
    assert re.search(r"1 faster, .*same", out)
    assert compare_main([str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                         "--changed"]) == 0
    out = capsys.readouterr().out
    assert "faster" in out and "p50_us" not in out


def test_compare_main_refuses_other_versions_and_unreadable_files(tmp_path, capsys):
    (tmp_path / "old.json").write_text(json.dumps(results()))
    (tmp_path / "new.json").write_text(json.dumps(results(schema=2)))
    (tmp_path / "bad.json").write_text("{not json")
    assert compare_main([str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 2
    err = capsys.readouterr().err
    assert "version 2" in err and "reads version 1" in err and len(err.strip().splitlines()) == 1
    assert compare_main([str(tmp_path / "old.json"), str(tmp_path / "bad.json")]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert compare_main([str(tmp_path / "old.json"), str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_load_reads_what_write_report_wrote(tmp_path):
    write_report(results(), str(tmp_path))
    assert load(str(tmp_path / "results.json")) == results()


# -- document -----------------------------------------------------------------------------------

def test_summary_rows_pick_the_headline_and_the_comparisons():
    echo, scaling, http = summary_rows(results())
    assert echo["scenario"] == "100 conn x 64 B" and echo["rule"] == "both"
    assert echo["reactor"] == "reactor"
    assert echo["asyncio_model"] == "asyncio-protocol"          # preferred over streams
    assert echo["asyncio_cpu_ratio"] == pytest.approx(0.8)      # 8 / 10
    assert echo["asyncio_rate_ratio"] == pytest.approx(1.2)     # 120k / 100k
    assert echo["floor_model"] == "selectors-minimal"
    assert echo["floor_cpu_ratio"] == pytest.approx(8 / 7.5)
    # best third party: uvloop on CPU (7.0), gevent on rate (150k); threads is not third party
    assert (echo["third_party_cpu_model"], echo["third_party_rate_model"]) == ("uvloop", "gevent")
    assert echo["third_party_cpu_ratio"] == pytest.approx(8 / 7.0)
    assert echo["third_party_rate_ratio"] == pytest.approx(0.8)
    assert scaling["scenario"] == "1 conn"
    assert http["scenario"] is None and http["status"].startswith("skipped")


def test_a_suites_own_floor_is_its_floor_and_never_its_asyncio():
    """asyncio-floor (fixed reply) and heapq are floors; asyncio is only a real asyncio model."""
    document = results()
    document["suites"]["http"] = {"title": "HTTP", "status": "ok", "seconds": 1.0, "results": [
        row("hello", "reactor", requests_per_second=40000.0, server_cpu_us_per_request=25.0),
        row("hello", "asyncio-floor", requests_per_second=100000.0,
            server_cpu_us_per_request=10.0),
        row("hello", "uvicorn-httptools", requests_per_second=20000.0,
            server_cpu_us_per_request=50.0)]}
    document["suites"]["loop"] = {"title": "Loop", "status": "ok", "seconds": 1.0, "results": [
        row("schedule", "reactor/wheel", ops_per_second=2e6),
        row("schedule", "asyncio", ops_per_second=1e6),
        row("schedule", "heapq", ops_per_second=4e6)]}
    by_suite = {entry["suite"]: entry for entry in summary_rows(document)}
    http, loop = by_suite["http"], by_suite["loop"]
    assert http["asyncio_model"] is None and http["floor_model"] == "asyncio-floor"
    assert http["floor_cpu_ratio"] == pytest.approx(2.5)
    assert http["third_party_rate_ratio"] == pytest.approx(2.0)
    assert (loop["reactor"], loop["rule"]) == ("reactor/wheel", "either")
    assert (loop["asyncio_model"], loop["asyncio_rate_ratio"]) == ("asyncio", pytest.approx(2.0))
    assert (loop["floor_model"], loop["floor_rate_ratio"]) == ("heapq", pytest.approx(0.5))


def with_programs():
    """results() with the echo rows of one asyncio program tagged by loop, and reactor.aio's."""
    document = results()
    echo = document["suites"]["echo"]["results"]
    for each in echo:
        if each["model"] in ("asyncio-protocol", "uvloop") and each["scenario"] != "idle memory":
            each.update(program="asyncio Protocol echo",
                        loop="asyncio" if each["model"] == "asyncio-protocol" else "uvloop")
    echo.append(row("100 conn x 64 B", "reactor-aio-protocol", program="asyncio Protocol echo",
                    loop="reactor.aio", requests_per_second=110000.0,
                    server_cpu_us_per_request=9.0, loadgen_busy=0.98))
    return document


def test_one_program_on_each_loop_is_compared_with_asyncios_own_loop():
    """program_rows: per suite and program, the headline scenario, asyncio's loop's figures
    and each other loop's ratios to them (CPU and rate)."""
    validate(with_programs())                       # program and loop are text fields
    [entry] = program_rows(with_programs())
    assert (entry["suite"], entry["program"], entry["scenario"]) == (
        "echo", "asyncio Protocol echo", "100 conn x 64 B")     # 1000 conn: asyncio's loop only
    assert (entry["base_model"], entry["base_cpu"], entry["base_rate"]) == (
        "asyncio-protocol", 10.0, 100000.0)
    assert list(entry["loops"]) == ["reactor.aio", "uvloop"]
    aio, uvloop = entry["loops"]["reactor.aio"], entry["loops"]["uvloop"]
    assert aio["model"] == "reactor-aio-protocol"
    assert (aio["cpu_ratio"], aio["rate_ratio"]) == (pytest.approx(0.9), pytest.approx(1.1))
    assert (uvloop["cpu_ratio"], uvloop["rate_ratio"]) == (pytest.approx(0.7), pytest.approx(1.3))
    assert program_rows(results()) == []


def test_the_summary_adds_the_program_table_only_when_a_program_ran_on_several_loops():
    """Without tagged rows the summary is as before; with them a second table follows, and
    the reactor.aio row changes nothing in the first."""
    before, after = summary_markdown(results()), summary_markdown(with_programs())
    assert after.startswith(before.rstrip("\n"))
    added = after[len(before.rstrip("\n")):]
    assert "The same asyncio program on each event loop" in added
    assert ("| echo | asyncio Protocol echo | 100 conn x 64 B | asyncio-protocol | 10.00 | "
            "100,000 req/s | 0.90x (reactor-aio-protocol) | 1.10x | 0.70x (uvloop) | 1.30x |"
            in added)
    assert summary_rows(with_programs()) == summary_rows(results())


def test_a_program_on_reactor_aio_neither_stands_for_reactor_nor_counts_as_third_party():
    """aiohttp on reactor.aio is reactor's loop, not a third party; with reactor's own row
    failed, no program row stands in for it."""
    document = results()
    document["suites"]["http"] = {"title": "HTTP", "status": "ok", "seconds": 1.0, "results": [
        row("hello", "reactor", requests_per_second=40000.0, server_cpu_us_per_request=25.0),
        row("hello", "aiohttp", program="aiohttp hello", loop="asyncio",
            requests_per_second=10000.0, server_cpu_us_per_request=90.0),
        row("hello", "aiohttp-reactor-aio", program="aiohttp hello", loop="reactor.aio",
            requests_per_second=20000.0, server_cpu_us_per_request=45.0),
        row("static", "reactor", status="failed: no"),
        row("static", "reactor-aio-protocol", program="p", loop="reactor.aio",
            requests_per_second=1.0, server_cpu_us_per_request=1.0)]}
    http = {entry["suite"]: entry for entry in summary_rows(document)}["http"]
    assert (http["scenario"], http["reactor"]) == ("hello", "reactor")
    assert http["third_party_cpu_model"] == http["third_party_rate_model"] == "aiohttp"
    document["suites"]["http"]["results"] = document["suites"]["http"]["results"][3:]
    assert {e["suite"]: e for e in summary_rows(document)}["http"]["reactor"] is None


def test_write_report_writes_the_report_json_and_charts(tmp_path):
    document = results()
    paths = write_report(document, str(tmp_path))
    assert paths[:2] == [str(tmp_path / "results.json"), str(tmp_path / "report.md")]
    assert all(os.path.exists(path) for path in paths)
    written = (tmp_path / "results.json").read_text()
    assert json.loads(written) == document
    assert written == json.dumps(document, indent=2) + "\n"
    assert list(load(str(tmp_path / "results.json"))["suites"]) == ["echo", "scaling", "http"]
    report = (tmp_path / "report.md").read_text()
    top = report.split("## Summary")[0]
    for fact in ("Test CPU 9000", "**Cores:** 2", "6.1.0", "CPython 3.11.7", "EpollSelector",
                 "loadgen.c (C, epoll)", "wrk 4.2.0", "echo / 100 conn x 64 B / reactor"):
        assert fact in top
    assert "**Load generator saturated:** **yes**, in 1 cell" in top
    summary = report.split("## Summary")[1].split("## Charts")[0]
    assert "lower is better" in summary and "first scenario" in summary
    echo_line = [l for l in summary.splitlines() if l.startswith("| echo")][0]
    for cell in ("100 conn x 64 B", "0.80x (asyncio-protocol)", "1.20x (asyncio-protocol)",
                 "1.07x (selectors-minimal)", "0.96x (selectors-minimal)", "1.14x (uvloop)",
                 "0.80x (gevent)", "120,000 req/s", "95% (saturated)"):
        assert cell in echo_line
    assert "skipped: wrk is not installed" in summary
    links = re.findall(r"!\[[^\]]*\]\((charts/[^)]+\.svg)\)", report)
    assert {"charts/echo-cpu.svg", "charts/echo-rate.svg", "charts/echo-latency.svg",
            "charts/echo-memory.svg", "charts/scaling.svg"} <= set(links)
    for link in links:
        assert (tmp_path / link).exists()
        root = parse((tmp_path / link).read_text())
        assert texts(root)
    raw = report.split("## Results per suite")[1]
    assert "skipped: twisted is not installed" in raw
    assert "skipped: ulimit -n 1024 is below 10,100" in raw
    assert "Status: skipped: wrk is not installed." in raw
    header = [l for l in raw.splitlines() if l.startswith("| scenario")][0]
    for metric in ("requests_per_second", "server_cpu_us_per_request", "p999_us",
                   "heap_bytes_per_connection", "rss_bytes_per_connection", "loadgen_busy"):
        assert metric in header
    assert "runs" not in header


def test_every_model_appears_in_the_charts_of_its_suite(tmp_path):
    write_report(results(), str(tmp_path))
    words = set()
    for name in ("echo-cpu", "echo-rate"):
        words |= set(texts(parse((tmp_path / "charts" / (name + ".svg")).read_text())))
    for model in ("reactor", "asyncio-protocol", "asyncio-streams", "selectors-minimal",
                  "uvloop", "gevent", "threads", "twisted"):
        assert model in words
    scaling = texts(parse((tmp_path / "charts" / "scaling.svg").read_text()))
    assert "connections (log scale)" in scaling
    assert "requests/s (req/s)" in scaling
    assert "p99 latency (µs, log scale)" in scaling            # 20 µs .. 20 ms: log
    assert "reactor" in scaling and "asyncio-protocol" in scaling


def test_markdown_escapes_odd_model_names(tmp_path):
    document = copy.deepcopy(results())
    document["suites"]["echo"]["results"][4]["model"] = "a<b&c|d"
    write_report(document, str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "a\\<b&c\\|d" in report
    assert "a<b&c|d" in texts(parse((tmp_path / "charts" / "echo-cpu.svg").read_text()))


def test_write_report_refuses_an_invalid_document(tmp_path):
    with pytest.raises(ValueError):
        write_report(results(schema=0), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# -- the summary block of docs/BENCHMARKS.md --------------------------------------------------

def test_summary_block_links_the_report_and_its_charts_relative_to_the_doc(tmp_path):
    """The block carries the summary table and every chart it names exists where it links."""
    report = tmp_path / "docs" / "benchmarks"
    write_report(results(), str(report))
    block = embed.summary_block(str(report), str(tmp_path / "docs"))
    assert block.startswith(embed.START) and block.rstrip().endswith(embed.END)
    assert "| echo (TCP echo) | 100 conn x 64 B | reactor |" in block
    assert "[benchmarks/report.md](benchmarks/report.md)" in block
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", block)
    assert "benchmarks/charts/echo-cpu.svg" in links and "benchmarks/charts/scaling.svg" in links
    assert all((tmp_path / "docs" / link).exists() for link in links)


def test_summary_main_replaces_only_the_marked_block(tmp_path, capsys):
    """Text outside the markers survives; running it twice gives the same document."""
    report = tmp_path / "docs" / "benchmarks"
    write_report(results(), str(report))
    doc = tmp_path / "docs" / "BENCHMARKS.md"
    doc.write_text("# Results\n\n%s\nstale table\n%s\n\n## loop (issue 2)\nraw\n"
                   % (embed.START, embed.END))
    assert embed.main([str(report), "--into", str(doc)]) == 0
    once = doc.read_text()
    assert once.startswith("# Results\n\n" + embed.START) and "stale table" not in once
    assert once.endswith(embed.END + "\n\n## loop (issue 2)\nraw\n")
    assert embed.main([str(report), "--into", str(doc)]) == 0
    assert doc.read_text() == once


def test_summary_main_refuses_a_doc_without_markers_and_names_them(tmp_path, capsys):
    """No markers: exit 1, the doc untouched, and the error shows the lines to add."""
    report = tmp_path / "report"
    write_report(results(), str(report))
    doc = tmp_path / "doc.md"
    doc.write_text("# Results\n")
    assert embed.main([str(report), "--into", str(doc)]) == 1
    assert doc.read_text() == "# Results\n"
    assert embed.START in capsys.readouterr().err


def test_the_committed_summary_is_the_committed_reports():
    """docs/BENCHMARKS.md's summary block is what docs/benchmarks/results.json gives, charts and all."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    docs = os.path.join(root, "docs")
    with open(os.path.join(docs, "BENCHMARKS.md"), encoding="utf-8") as handle:
        text = handle.read()
    block = embed.summary_block(os.path.join(docs, "benchmarks"), docs)
    assert block in text, "run: python -m benchmarks summary docs/benchmarks --into docs/BENCHMARKS.md"
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", block):
        assert os.path.exists(os.path.join(docs, link)), link

"""The benchmark command line refuses what it cannot run, saying why, before it starts anything."""

import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmarks(args, fd_limit=None):
    def limit():
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))
    return subprocess.run([sys.executable, "-m", "benchmarks"] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, preexec_fn=limit)


def test_ten_thousand_connections_under_a_low_fd_limit_say_which_limit_they_need():
    result = run_benchmarks(["echo", "--connections", "10000"], fd_limit=500)
    assert result.returncode == 2
    assert "10,000 connections need an open-file limit of at least 10,100" in result.stdout
    assert "allows 500 and at most 500" in result.stdout
    assert "ulimit -n 10100" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_connection_count_that_is_not_a_positive_number_is_refused():
    for value in ("0", "many"):
        result = run_benchmarks(["echo", "--connections", value])
        assert result.returncode == 2
        assert ("positive count" in result.stdout) or ("usage:" in result.stdout)
        assert "Traceback" not in result.stderr


def test_wrk_latency_output_is_parsed_into_counts_and_microseconds():
    """The http suite reads requests, seconds, p50/p99 and errors from wrk --latency."""
    from benchmarks.web import parse_wrk
    result = parse_wrk("  Latency Distribution\n     50%  665.00us\n     99%    1.86ms\n"
                       "  385382 requests in 3.10s, 28.67MB read\n"
                       "  Socket errors: connect 0, read 2, write 0, timeout 3\n")
    assert (result["requests"], result["seconds"]) == (385382, 3.1)
    assert (result["p50_us"], result["p99_us"], result["errors"]) == (665.0, 1860.0, 5)


def test_a_model_list_naming_an_unknown_model_is_refused_before_anything_runs():
    """echo and http --models A,B: a name the suite does not know exits 2, naming it."""
    for suite, known in (("echo", "asyncio-protocol"), ("http", "aiohttp")):
        result = run_benchmarks([suite, "--models", known + ",no-such-model"])
        assert result.returncode == 2, result.stdout
        assert "no %s model named no-such-model" % suite in result.stdout
        assert "Traceback" not in result.stderr

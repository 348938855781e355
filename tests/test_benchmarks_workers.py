"""``echo/http --workers 1,2`` and the chat-redis suite: options, CPU over a process tree,
the table, a quick smoke run, and the skip without redis-server."""

import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks import chat_redis
from benchmarks.harness import SINGLE, ServerFailed, cli_server, process_tree, tree_cpu_seconds
from benchmarks.workers import parse_workers, workers_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmarks(args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "benchmarks"] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_workers_counts_are_parsed_from_the_suites_extra_options():
    assert parse_workers(["--workers", "1,2"]) == [1, 2]
    assert parse_workers(["--quick", "--workers=2,1,2"]) == [1, 2]
    assert parse_workers(["--connections", "10"]) is None
    for bad in (["--workers"], ["--workers", "0"], ["--workers", "one,2"], ["--workers", ","]):
        with pytest.raises(ValueError):
            parse_workers(bad)


def test_a_bad_workers_value_is_refused_before_anything_starts():
    for suite in ("echo", "http"):
        result = run_benchmarks([suite, "--workers", "0,1"])
        assert result.returncode == 2
        assert "positive worker counts" in result.stdout
        assert "usage: python -m benchmarks %s --workers 1,2" % suite in result.stdout
        assert "Traceback" not in result.stderr


BURN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time\\nend = time.process_time() + 0.4\\nwhile time.process_time() < end: pass\\n"
    "print('burnt', flush=True)\\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


def test_cpu_is_summed_over_a_process_and_its_children():
    parent = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "burnt"
        tree = process_tree(parent.pid)
        assert tree == sorted([parent.pid, child])
        assert tree_cpu_seconds(tree) >= 0.35          # the child's 0.4 s of CPU is counted
        assert tree_cpu_seconds([parent.pid]) < tree_cpu_seconds(tree)
    finally:
        parent.kill()
        parent.wait()
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists("/proc/%d" % child) and time.monotonic() < deadline:
        time.sleep(0.05)                # reaped by init once its parent is gone
    with pytest.raises(ProcessLookupError):
        tree_cpu_seconds([parent.pid])


def test_the_server_counted_is_the_supervisor_and_each_worker_and_a_restart_fails_the_run():
    with cli_server(["echo"], workers=2) as server:
        assert len(server.pids) == 3 and server.pids[0] == server.process.pid
        server.check_unchanged()
        os.kill(server.pids[1], signal.SIGKILL)         # a worker we started, by its pid
        time.sleep(0.5)                                 # the supervisor starts another
        with pytest.raises(RuntimeError, match="a worker exited or restarted"):
            server.check_unchanged()
        with pytest.raises(ProcessLookupError):
            server.cpu()
    with cli_server(["echo"]) as server:
        assert server.pids == [server.process.pid]


def test_a_server_that_does_not_start_is_a_failure_with_its_reason():
    with pytest.raises(ServerFailed, match=r"--workers 2 exited \(2\): .*--no-such-option"):
        with cli_server(["echo", "--no-such-option"], workers=2):
            pass


def test_the_table_gives_cpu_and_rate_as_ratios_to_the_single_process():
    def run(rate, cpu, processes):
        return {"requests_per_second": rate, "server_cpu_us_per_request": cpu,
                "server_cores": 1.0, "loadgen_busy": 0.9, "errors": 0, "processes": processes}
    label, models = "100 conn", [SINGLE, "--workers 1", "--workers 2"]
    runs = {(label, SINGLE): [run(100.0, 10.0, 1), run(200.0, 10.0, 1)],
            (label, "--workers 1"): [run(100.0, 11.0, 2), run(200.0, 11.0, 2)],
            (label, "--workers 2"): [None, None]}
    status = {(label, "--workers 2"): "failed: it broke"}
    notes = []
    rows, medians = workers_rows(label, models, runs, status, notes)
    assert rows[0][:6] == [SINGLE, "1", "150", "10.0", "1.00x", "1.00x"]
    assert rows[1][:9] == ["--workers 1", "2", "150", "11.0", "1.10x", "1.00x", "1.00", "90%",
                           "0"]
    assert rows[2][:2] == ["--workers 2", "failed (below)"]
    assert notes == ["--workers 2 failed: it broke"]
    assert set(medians) == {SINGLE, "--workers 1"}


def test_echo_with_one_and_two_workers_runs_quickly_and_prints_the_table():
    started = time.monotonic()
    result = run_benchmarks(["echo", "--workers", "1,2", "--quick"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 50
    table = result.stdout.split("1 process against --workers 1,2", 1)[1]
    for model, processes in ((SINGLE, "1"), ("--workers 1", "2"), ("--workers 2", "3")):
        row = [line for line in table.splitlines() if line.startswith(model + "  ")]
        assert len(row) == 1 and row[0].split()[len(model.split())] == processes, table
    assert "failed" not in table
    assert "the load generator competes with the workers for the cores" in table
    assert "Traceback" not in result.stderr


def test_chat_redis_skips_with_its_reason_without_redis_server(tmp_path):
    result = run_benchmarks(["chat-redis", "--quick"], env=dict(os.environ, PATH=str(tmp_path)))
    assert result.returncode == 0
    assert "chat-redis skipped: redis-server is not installed" in result.stdout
    assert "Traceback" not in result.stderr


def test_chat_redis_skips_when_chat_has_no_redis_option(monkeypatch):
    monkeypatch.setattr(chat_redis.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(chat_redis.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout="usage: python -m reactor chat [--port PORT] [--fanout-rate N]\n"))
    assert chat_redis.why_not() == "python -m reactor chat has no --redis option in this checkout"
    monkeypatch.setattr(chat_redis.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout="usage: python -m reactor chat [--redis URL]\n"))
    assert chat_redis.why_not() is None


def test_the_chat_client_counts_every_line_it_sent_at_every_receiver():
    """One process, no Redis: the client's counting and its in-flight bound, on a real chat."""
    run = chat_redis.chat_run(chat_redis.NO_REDIS, senders=2, receivers=3, warmup=0.2,
                              duration=0.5)
    assert run["messages_per_second"] > 0
    assert run["lines_per_second"] == pytest.approx(run["messages_per_second"] / 3)
    assert (run["lost"], run["duplicated"]) == (0, 0)
    assert run["processes"] == 1


def test_chat_lines_cross_from_one_process_to_the_other_through_redis():
    why = chat_redis.why_not()
    if why:
        pytest.skip(why)
    run = chat_redis.chat_run(chat_redis.TWO, senders=1, receivers=3, warmup=0.2, duration=0.5)
    assert run["messages_per_second"] > 0
    assert (run["lost"], run["duplicated"]) == (0, 0)
    assert run["processes"] == 2

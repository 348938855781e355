"""The lessons about time and the loop thread: each shows the naive failure and reactor's fix.

timer-drift, slow-callback, lost-wakeup, greedy-reader and blocking-dns run
for real here, half a second per side, on loopback; the figures are
measured, so each test checks which side behaved, that the figures its
verdict cites are numbers, and that the lesson left no socket, thread or
patched function behind.
"""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from reactor import lessons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Each lesson and the figures its verdict is built from.
CITED_FIGURES = {
    "timer-drift": ("ticks run", "ticks lost per second",
                    "last tick behind its grid point (ms)"),
    "slow-callback": ("pings answered", "pings longest wait (ms)",
                      "pings median round trip (ms)", "slow requests answered"),
    "lost-wakeup": ("jobs handed over", "jobs run", "median hand-off to run (ms)",
                    "longest wait (ms)"),
    "greedy-reader": ("pings answered", "pings longest wait (ms)",
                      "flood MiB read by the server"),
    "blocking-dns": ("pings answered", "pings longest wait (ms)", "back-end connects by name"),
}


def open_fds():
    """The fds this process holds (Linux), or None where /proc is missing."""
    try:
        return set(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def settled_threads(before, timeout_seconds=2.0):
    """The threads started since ``before`` still alive after up to ``timeout_seconds``."""
    give_up = time.monotonic() + timeout_seconds
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > give_up:
            return extra
        extra[0].join(0.05)


_RUNS = {}


def run_lesson(name):
    """Run ``name`` for 0.5 s per side once per session; return (outcomes, what it leaked)."""
    if name not in _RUNS:
        threads_before = set(threading.enumerate())
        fds_before = open_fds()
        getaddrinfo = socket.getaddrinfo
        outcomes = lessons.load(name).run(0.5)
        leaked = {"threads": settled_threads(threads_before),
                  "getaddrinfo patched": socket.getaddrinfo is not getaddrinfo}
        if fds_before is not None:
            leaked["fds"] = sorted(open_fds() - fds_before)
        _RUNS[name] = outcomes, leaked
    return _RUNS[name]


@pytest.mark.parametrize("name", sorted(CITED_FIGURES))
def test_naive_side_misbehaves_and_reactor_behaves_measured(name):
    """Half a second per side: the naive side fails, reactor's does not, figures are numbers."""
    (naive, fixed), leaked = run_lesson(name)
    assert (naive.side, fixed.side) == ("naive", "reactor")
    assert not naive.ok, naive
    assert fixed.ok, fixed
    for outcome in (naive, fixed):
        assert outcome.verdict and "\n" not in outcome.verdict
        for label in CITED_FIGURES[name]:
            value = outcome.figures[label]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (label, value)


@pytest.mark.parametrize("name", sorted(CITED_FIGURES))
def test_lesson_leaves_no_socket_thread_or_patch_behind(name):
    """After a run, no new fd or thread remains and socket.getaddrinfo is the real one."""
    _, leaked = run_lesson(name)
    assert (leaked["threads"], leaked["getaddrinfo patched"], leaked.get("fds", [])) \
        == ([], False, []), leaked


def test_slow_callback_debug_mode_names_the_users_method():
    """Reactor's side of slow-callback reports debug mode's warning naming data_received."""
    fixed = run_lesson("slow-callback")[0][1]
    assert "slow callback _InlineEcho.data_received" in fixed.figures["debug mode said, inline"]


def test_timer_drift_loses_ticks_only_on_the_naive_side():
    """Re-arming from now loses ticks every second; call_every runs at least as many."""
    naive, fixed = run_lesson("timer-drift")[0]
    assert naive.figures["ticks lost per second"] > 5
    assert fixed.figures["ticks run"] > naive.figures["ticks run"]


def test_a_lesson_runs_from_the_command_line():
    """``python -m reactor lesson lost-wakeup`` exits 0 and names what prevents the bug."""
    result = subprocess.run([sys.executable, "-m", "reactor", "lesson", "lost-wakeup",
                             "--seconds", "0.5"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prevented by: reactor/loop.py:EventLoop.call_soon_threadsafe" in result.stdout
    assert "naive" in result.stdout and "reactor" in result.stdout

"""The I/O lessons: each shows the naive failure and reactor's fix, measured, and cleans up.

emfile-spin, partial-send, half-close, tls-close-hang, fd-reuse, unbounded-buffer
(the framework itself is tested in tests/test_lessons.py).
"""

import os
import shutil
import subprocess
import sys
import threading

import pytest

from reactor import lessons

from .test_lessons import ROOT

#: Each lesson, with the figures its verdicts cite (they must be measured numbers).
CITED = {
    "emfile-spin": ("CPU seconds", "wall seconds", "loop passes per second",
                    "clients closed promptly", "clients left hanging"),
    "partial-send": ("bytes the program wrote", "bytes received", "bytes lost"),
    "half-close": ("clients", "complete replies", "reply bytes lost"),
    "tls-close-hang": ("seconds the server spent closing the silent client",
                       "pings answered once the close began", "longest wait for an echo, ms"),
    "fd-reuse": ("requests sent by the new client", "requests answered"),
    "unbounded-buffer": ("peak bytes buffered in the process", "bytes produced"),
}


def _needs(name):
    if name == "tls-close-hang" and shutil.which("openssl") is None:
        pytest.skip("the lesson makes its certificate with the openssl command "
                    "(apt install openssl)")
    if name == "emfile-spin":
        pytest.importorskip("resource", reason="lowering RLIMIT_NOFILE needs the resource module")


def _open_fds():
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


@pytest.mark.parametrize("name", sorted(CITED))
def test_naive_side_fails_and_reactor_side_behaves_measured(name):
    """At 0.5 s a side the naive side misbehaves and reactor's behaves, with measured figures."""
    _needs(name)
    fds, threads = _open_fds(), threading.active_count()
    naive, ours = lessons.load(name).run(0.5)
    assert (naive.side, ours.side) == ("naive", "reactor")
    assert naive.ok is False, naive
    assert ours.ok is True, ours
    for outcome in (naive, ours):
        assert outcome.verdict and "\n" not in outcome.verdict
        for figure in CITED[name]:
            value = outcome.figures[figure]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (figure, value)
    assert threading.active_count() == threads, "the lesson left a thread running"
    assert _open_fds() == fds, "the lesson left file descriptors open"


def test_fd_reuse_lesson_runs_from_the_command_line():
    """`python -m reactor lesson fd-reuse --seconds 0.5` exits 0 and says what prevents the bug."""
    result = subprocess.run([sys.executable, "-m", "reactor", "lesson", "fd-reuse", "--seconds",
                             "0.5"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prevented by: reactor/watchers.py:Watchers.watch" in result.stdout
    assert "naive" in result.stdout and "requests answered" in result.stdout

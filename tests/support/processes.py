"""Processes and threads: ``python -m reactor`` in a subprocess, threads, CPU time, open fds."""

import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

#: The repository root: where ``python -m reactor`` finds the package.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def need_binary(binary, package):
    """Return the path of ``binary``; skip (or fail in CI) when it is missing.

    Outside CI a missing client is a skip that names its Debian package; in CI
    (``CI=true``) ``.ci/run`` installs it, so its absence fails the test.
    """
    path = shutil.which(binary)
    if path is None:
        message = "%s is not installed (apt install %s)" % (binary, package)
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; .ci/run should have installed it")
        pytest.skip(message)
    return path


def stop_processes(processes):
    """Terminate each process still running and wait for all of them (kill after 10 s)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def start_cli(*args, listening=r"listening on (\S+)", before=0):
    """Start ``python -m reactor ARGS``; return the process and where it said it listens.

    Its first line on stderr must match the regular expression ``listening``,
    whose group 1 is the address (or one of its first ``before + 1`` lines:
    kv logs its append-only file's replay first; those lines are kept in
    ``process.lines_before``); otherwise the process is killed and the test
    fails with what it printed.
    """
    process = subprocess.Popen([sys.executable, "-m", "reactor"] + list(args), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.lines_before = []
    for _ in range(before + 1):
        line = process.stderr.readline()
        match = re.search(listening, line)
        if match:
            process.listening_line = line
            return process, match.group(1)
        process.lines_before.append(line)
    process.kill()
    raise AssertionError("no %r line: %r %r" % (listening, process.lines_before,
                                                process.communicate()))


def start_cli_on_port(*args, listening=r"listening on (\S+)", before=0):
    """Start ``python -m reactor ARGS`` on a port; return the process and its (host, port)."""
    process, where = start_cli(*args, listening=listening, before=before)
    host, port = where.rsplit(":", 1)
    return process, (host, int(port))


def run_cli(*args, timeout=20):
    """Run ``python -m reactor ARGS`` to its end; return the ``CompletedProcess`` (text)."""
    return subprocess.run([sys.executable, "-m", "reactor"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def run_in_thread(target):
    """Start ``target()`` on a thread; return it and a dict that gets ``value`` or ``error``."""
    result = {}

    def wrapper():
        try:
            result["value"] = target()
        except BaseException as exc:             # reported by the test thread
            result["error"] = exc
    thread = threading.Thread(target=wrapper)
    thread.start()
    return thread, result


def cpu_seconds(pid):
    """Return the user + system CPU seconds process ``pid`` has used (Linux /proc)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds():
    """Return the set of this process's open fds (Linux /proc), or None elsewhere."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    return set(os.listdir("/proc/self/fd"))

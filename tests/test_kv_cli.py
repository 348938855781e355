"""python -m reactor kv as users run it: redis-cli, redis-benchmark, and the append-only file.

redis-cli and redis-benchmark come from Debian's redis-tools; without them
these tests are skipped and say so, except in CI (CI=true), where .ci/run
installs them and their absence fails the test.
"""

import signal
import socket
import subprocess
import time

import pytest

from tests.support.processes import need_binary, run_cli, start_cli_on_port, stop_processes
from tests.support.resp_golden import encode, reply_end


def need(binary):
    """Return the path of ``binary``; skip (or fail in CI) when it is missing."""
    return need_binary(binary, "redis-tools")


@pytest.fixture
def stop():
    """Collect processes; terminate and wait for each at the end."""
    processes = []
    yield processes.append
    stop_processes(processes)


def start_kv(stop, *args):
    process, (host, port) = start_cli_on_port("kv", "--port", "0", *args, before=3)
    stop(process)
    return process, port


def cli(port, *args, stdin=None, binary="redis-cli"):
    result = subprocess.run([need(binary), "-p", str(port)] + list(args), input=stdin,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def send_and_wait(port, commands):
    """Send each command on one connection and wait for its reply; return the replies' bytes."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for command in commands:
            sock.sendall(encode(command))
            buffer = b""
            while reply_end(buffer) is None if buffer else True:
                chunk = sock.recv(65536)
                assert chunk, "kv closed the connection"
                buffer += chunk
            replies.append(buffer)
    return replies


def test_redis_cli_sets_gets_and_reads_info(stop):
    """redis-cli's one-shot commands and its stdin mode both work against kv."""
    _, port = start_kv(stop)
    assert cli(port, "SET", "greeting", "hello") == "OK\n"
    assert cli(port, "GET", "greeting") == "hello\n"
    assert cli(port, "INCR", "visits") == "1\n"
    assert cli(port, stdin="SET a 1\nMGET a greeting nokey\nDBSIZE\n") == \
        "OK\n1\nhello\n\n3\n"
    assert "redis_version:" in cli(port, "INFO", "server")
    assert "ERR unknown command 'NOPE'" in cli(port, "NOPE")


def test_redis_cli_dash_a_authenticates_with_the_token_file(stop, tmp_path):
    """--auth-token-file makes AUTH required; redis-cli -a TOKEN gets in, without it NOAUTH."""
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    _, port = start_kv(stop, "--auth-token-file", str(token))
    assert "NOAUTH Authentication required." in cli(port, "GET", "k")
    assert cli(port, "-a", "s3cret-token", "--no-auth-warning", "SET", "k", "v") == "OK\n"
    refused = subprocess.run([need("redis-cli"), "-p", str(port), "-a", "wrong",
                              "--no-auth-warning", "GET", "k"],
                             capture_output=True, text=True, timeout=60)
    assert "AUTH failed: WRONGPASS" in refused.stderr          # as against redis-server
    assert "NOAUTH Authentication required." in refused.stdout


def test_redis_benchmark_runs_set_and_get_against_kv(stop):
    """redis-benchmark -t set,get -n 10000 -q completes and reports both tests."""
    _, port = start_kv(stop)
    output = cli(port, "-t", "set,get", "-n", "10000", "-q", binary="redis-benchmark")
    lines = [line for line in output.replace("\r", "\n").splitlines() if "requests per second" in line]
    assert any(line.startswith("SET:") for line in lines), output
    assert any(line.startswith("GET:") for line in lines), output
    assert cli(port, "DBSIZE").strip() != "0"


def test_acknowledged_writes_survive_kill_9_and_replay(stop, tmp_path):
    """Every write kv acknowledged before a kill -9 is there after a restart on the same file."""
    path = str(tmp_path / "appendonly.aof")
    process, port = start_kv(stop, "--appendonly", path, "--appendfsync", "everysec")
    replies = send_and_wait(port, [["SET", "key:%d" % i, "value-%d" % i] for i in range(300)]
                            + [["SET", "ttl", "x", "EX", "1000"], ["INCRBY", "counter", "41"],
                               ["INCR", "counter"], ["DEL", "key:0"]])
    assert replies[-1] == b":1\r\n"
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    _, port = start_kv(stop, "--appendonly", path)
    assert send_and_wait(port, [["DBSIZE"], ["GET", "key:299"], ["GET", "key:0"],
                                ["GET", "counter"], ["TTL", "ttl"]]) == [
        b":301\r\n", b"$9\r\nvalue-299\r\n", b"$-1\r\n", b"$2\r\n42\r\n", b":1000\r\n"]


def test_a_cut_off_tail_is_dropped_with_a_warning_and_corruption_refuses_to_start(stop, tmp_path):
    """A half-written last command is cut at start; a bad byte elsewhere stops kv, naming the offset."""
    path = tmp_path / "appendonly.aof"
    whole = encode(["SET", "a", "1"]) + encode(["SET", "b", "2"])
    path.write_bytes(whole + encode(["SET", "c", "3"])[:-3])
    process, port = start_kv(stop, "--appendonly", str(path))
    assert send_and_wait(port, [["MGET", "a", "b", "c"]]) == [
        b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"]
    warning = " ".join(process.lines_before)
    assert "WARNING" in warning and str(len(whole)) in warning, warning
    assert path.read_bytes() == whole
    damaged = whole.replace(b"$1\r\nb", b"?1\r\nb")
    path.write_bytes(damaged)
    result = run_cli("kv", "--port", "0", "--appendonly", str(path))
    assert result.returncode == 1
    assert "cannot use --appendonly" in result.stderr
    assert "byte %d" % damaged.index(b"?1") in result.stderr, result.stderr


def test_bad_options_stop_kv_with_one_line():
    """A negative --maxmemory or a PSK file is refused before kv listens."""
    result = run_cli("kv", "--port", "0", "--maxmemory", "-1")
    assert result.returncode == 1 and "--maxmemory must be" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("kv", "--port", "0", "--psk-file", "/nonexistent")
    assert result.returncode == 1 and "use --auth-token-file" in result.stderr


def test_sigterm_stops_kv_and_flushes_the_file(stop, tmp_path):
    """SIGTERM exits 0 and every write is in the file (appendfsync no)."""
    path = str(tmp_path / "appendonly.aof")
    process, port = start_kv(stop, "--appendonly", path, "--appendfsync", "no")
    send_and_wait(port, [["SET", "k%d" % i, "v"] for i in range(50)])
    process.terminate()
    assert process.wait(10) == 0
    assert open(path, "rb").read().count(b"SET") == 50


def test_the_protection_switches_apply_to_kv(stop):
    """--idle-timeout closes a silent client; --max-connections refuses the one past the cap."""
    _, port = start_kv(stop, "--idle-timeout", "0.3", "--max-connections", "1")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as first:
        first.sendall(encode(["PING"]))
        assert first.recv(64) == b"+PONG\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as second:
            second.sendall(encode(["PING"]))
            try:
                refused = second.recv(64)
            except ConnectionResetError:
                refused = b""
            assert refused == b""                          # closed at once: over the cap
        started = time.monotonic()
        assert first.recv(64) == b""                       # then the idle timeout ends the first
        assert 0.1 < time.monotonic() - started < 3.0

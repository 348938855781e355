"""The kv server's append-only file: what is appended comes back, a cut-off tail is repaired, damage is refused."""

import logging
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

import pytest

from reactor.apps import kv_aof
from reactor.apps.kv_aof import FSYNC_POLICIES, AofCorruptError, AppendOnlyFile, replay
from reactor.errors import ReactorError

ROOT = pathlib.Path(__file__).resolve().parent.parent

COMMANDS = [
    [b"SET", b"greeting", b"hello"],
    [b"SET", b"line\r\nbreak", b"nul\0inside\r\n"],
    [b"SET", b"", b""],
    [b"DEL", b"greeting"],
    [b"RPUSH", b"list", b"*2\r\n$3\r\n", b"\xff\xfe"],
]


def encode(args):
    """Return the RESP bytes for one command, written out independently of the module."""
    return b"*" + str(len(args)).encode() + b"\r\n" + b"".join(
        b"$" + str(len(arg)).encode() + b"\r\n" + arg + b"\r\n" for arg in args)


def write_commands(path, commands):
    """Write ``commands`` to ``path`` with an AppendOnlyFile and close it."""
    aof = AppendOnlyFile(str(path), "no")
    for args in commands:
        aof.append(args)
    aof.close()


@pytest.fixture
def fsync_calls(monkeypatch):
    """Count os.fsync calls made by the module (the real fsync still runs)."""
    calls = []
    real_fsync = os.fsync

    def counting_fsync(fd):
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(kv_aof.os, "fsync", counting_fsync)
    return calls


def test_appended_commands_replay_byte_for_byte(tmp_path):
    """Commands appended and closed come back whole, binary-safe, empty arguments included."""
    path = tmp_path / "appendonly.aof"
    write_commands(path, COMMANDS)
    assert path.read_bytes() == b"".join(encode(args) for args in COMMANDS)
    assert replay(str(path)) == (COMMANDS, path.stat().st_size, None)


def test_bytes_written_counts_what_reached_the_os(tmp_path):
    """bytes_written grows at flush, not at append."""
    aof = AppendOnlyFile(str(tmp_path / "a.aof"), "everysec")
    aof.append(COMMANDS[0])
    assert aof.bytes_written == 0
    aof.flush()
    assert aof.bytes_written == len(encode(COMMANDS[0]))
    aof.close()


@pytest.mark.parametrize("policy", FSYNC_POLICIES)
def test_every_policy_puts_the_bytes_in_the_file(tmp_path, policy):
    """After append + flush, whatever the policy, the file holds the command (not before)."""
    path = tmp_path / "a.aof"
    aof = AppendOnlyFile(str(path), policy)
    aof.append(COMMANDS[1])
    with open(str(path), "rb") as file:
        assert file.read() == b""
    aof.flush()
    with open(str(path), "rb") as file:
        assert file.read() == encode(COMMANDS[1])
    aof.close()


@pytest.mark.parametrize("policy, fsyncs_after_ticks", [("everysec", 1), ("no", 0), ("always", 2)])
def test_who_fsyncs_depends_on_the_policy(tmp_path, fsync_calls, policy, fsyncs_after_ticks):
    """everysec fsyncs on tick, no never does, always fsyncs on each flush (one per batch)."""
    aof = AppendOnlyFile(str(tmp_path / "a.aof"), policy)
    aof.append(COMMANDS[0])
    aof.append(COMMANDS[1])
    assert fsync_calls == []
    aof.flush()
    assert len(fsync_calls) == (1 if policy == "always" else 0)
    aof.append(COMMANDS[2])
    aof.flush()
    assert len(fsync_calls) == (2 if policy == "always" else 0)
    aof.tick()
    aof.tick()                          # nothing new since the last fsync: no second fsync
    assert len(fsync_calls) == fsyncs_after_ticks
    aof.close()


def test_close_fsyncs_and_is_idempotent(tmp_path, fsync_calls):
    """close() flushes and fsyncs whatever the policy; a second close does nothing."""
    path = tmp_path / "a.aof"
    aof = AppendOnlyFile(str(path), "no")
    aof.append(COMMANDS[0])
    aof.close()
    aof.close()
    assert len(fsync_calls) == 1
    assert path.read_bytes() == encode(COMMANDS[0])


def test_append_after_close_raises(tmp_path):
    """Appending to a closed file raises AofClosedError instead of buffering into nowhere."""
    aof = AppendOnlyFile(str(tmp_path / "a.aof"))
    aof.close()
    with pytest.raises(kv_aof.AofClosedError):
        aof.append(COMMANDS[0])


def test_empty_command_is_refused(tmp_path):
    """A command with no arguments raises ValueError: the file could not replay it."""
    aof = AppendOnlyFile(str(tmp_path / "a.aof"))
    with pytest.raises(ValueError):
        aof.append([])
    aof.close()


def test_partial_writes_are_completed_in_order(tmp_path, monkeypatch):
    """A write() that takes fewer bytes than asked is resumed; the file stays a clean stream."""
    path = tmp_path / "a.aof"
    real_write = os.write
    monkeypatch.setattr(kv_aof.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    write_commands(path, COMMANDS)
    assert replay(str(path)) == (COMMANDS, path.stat().st_size, None)


def test_failed_write_keeps_the_rest_buffered(tmp_path, monkeypatch):
    """A write() error after a partial write keeps the unwritten rest first in line for the next flush."""
    path = tmp_path / "a.aof"
    aof = AppendOnlyFile(str(path), "everysec")
    real_write = os.write
    outcomes = [5, OSError(28, "No space left on device")]

    def failing_write(fd, data):
        outcome = outcomes.pop(0) if outcomes else None
        if isinstance(outcome, OSError):
            raise outcome
        return real_write(fd, bytes(data[:outcome]) if outcome else data)

    monkeypatch.setattr(kv_aof.os, "write", failing_write)
    aof.append(COMMANDS[0])
    with pytest.raises(OSError):
        aof.flush()
    assert replay(str(path))[2] == 0    # a truncated tail so far, never corruption
    aof.append(COMMANDS[1])
    aof.close()
    assert replay(str(path))[0] == COMMANDS[:2]


def test_cut_at_every_offset_of_the_last_command(tmp_path, caplog):
    """A file cut anywhere inside its last command replays the whole ones; open_and_replay repairs it."""
    path = tmp_path / "a.aof"
    whole = b"".join(encode(args) for args in COMMANDS)
    last_start = len(whole) - len(encode(COMMANDS[-1]))
    for cut in range(last_start + 1, len(whole)):
        path.write_bytes(whole[:cut])
        assert replay(str(path)) == (COMMANDS[:-1], last_start, last_start), cut
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="reactor"):
            aof, commands = AppendOnlyFile.open_and_replay(str(path))
        assert commands == COMMANDS[:-1]
        assert path.stat().st_size == last_start
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert str(path) in message and "byte %d" % last_start in message
        assert "%d bytes" % (cut - last_start) in message
        aof.append([b"SET", b"after", b"repair"])
        aof.close()
        assert replay(str(path)) == (COMMANDS[:-1] + [[b"SET", b"after", b"repair"]],
                                     path.stat().st_size, None)


def test_clean_file_opens_without_a_warning(tmp_path, caplog):
    """A file that ends on a whole command is reopened as is, silently, and appends follow it."""
    path = tmp_path / "a.aof"
    write_commands(path, COMMANDS[:2])
    with caplog.at_level(logging.WARNING, logger="reactor"):
        aof, commands = AppendOnlyFile.open_and_replay(str(path), "always")
    aof.append(COMMANDS[2])
    aof.close()
    assert commands == COMMANDS[:2] and caplog.records == []
    assert replay(str(path))[0] == COMMANDS[:3]


def damaged(offset_of, replacement):
    """Return (file bytes, bad offset): three commands with one byte of the second replaced."""
    first, second, third = (encode(args) for args in COMMANDS[:3])
    index = offset_of(second)
    data = first + second[:index] + replacement + second[index + 1:] + third
    return data, len(first) + index


@pytest.mark.parametrize("offset_of, replacement", [
    (lambda command: 0, b"x"),                                   # '*' of the 2nd command
    (lambda command: 1, b"-"),                                   # a sign in the count
    (lambda command: 1, b"0"),                                   # a count of zero
    (lambda command: command.index(b"$"), b"+"),                 # '$' of the first argument
    (lambda command: command.index(b"$") + 1, b"x"),             # a bad length digit
    (lambda command: command.index(b"\r\n", 4), b"\n"),          # '\r' of a length header lost
    (lambda command: command.index(b"\r\n", 4) + 1, b"x"),       # '\n' of a length header lost
    (lambda command: command.index(b"SET") + 3, b"!"),           # no '\r\n' after a payload
    (lambda command: command.index(b"SET") + 4, b"\r"),          # '\r' but no '\n' after it
], ids=["star", "sign", "zero-count", "dollar", "length-digit", "header-cr", "header-lf",
        "payload-cr", "payload-lf"])
def test_damage_in_the_middle_is_refused_with_its_offset(tmp_path, offset_of, replacement):
    """A bad byte before the last command raises AofCorruptError at that byte; the file is untouched."""
    path = tmp_path / "a.aof"
    data, bad_offset = damaged(offset_of, replacement)
    path.write_bytes(data)
    with pytest.raises(AofCorruptError) as caught:
        replay(str(path))
    assert caught.value.offset == bad_offset and caught.value.path == str(path)
    assert str(path) in str(caught.value) and "byte %d" % bad_offset in str(caught.value)
    with pytest.raises(AofCorruptError):
        AppendOnlyFile.open_and_replay(str(path))
    assert path.read_bytes() == data


def test_wrong_length_digit_is_caught_where_the_terminator_should_be(tmp_path):
    """A length that is a valid number but wrong is caught where its '\\r\\n' should have been."""
    path = tmp_path / "a.aof"
    second = encode(COMMANDS[1])
    first = encode(COMMANDS[0])
    wrong = second.replace(b"$3\r\nSET", b"$2\r\nSET", 1)
    path.write_bytes(first + wrong + encode(COMMANDS[2]))
    with pytest.raises(AofCorruptError) as caught:
        replay(str(path))
    assert caught.value.offset == len(first) + wrong.index(b"SET") + 2
    assert isinstance(caught.value, ReactorError)


@pytest.mark.parametrize("tail, bad_offset", [
    (b"*1\r\n$999999999\r\nabc", 5),          # over 512 MiB, then a cut-off payload
    (b"*1\r\n$999999999", 5),                   # the same, cut inside the header
    (b"*1\r\n$1234567890", 14),                 # a tenth digit: no valid length has one
    (b"*1\r\n$01\r\n", 6),                      # a leading zero
    (b"*9999999999\r\n$3\r\nSET\r\n", 1),        # a count over INT_MAX
])
def test_numbers_over_redis_limits_are_corruption_not_a_tail(tmp_path, tail, bad_offset):
    """A length over 512 MiB, a count over INT_MAX or a malformed number is corruption, even at the end."""
    path = tmp_path / "a.aof"
    path.write_bytes(encode(COMMANDS[0]) + tail)
    with pytest.raises(AofCorruptError) as caught:
        replay(str(path))
    assert caught.value.offset == len(encode(COMMANDS[0])) + bad_offset


def test_append_refuses_what_replay_would_refuse(tmp_path, monkeypatch):
    """An argument over MAX_ARGUMENT_BYTES raises ValueError and leaves the file as it was."""
    path = tmp_path / "a.aof"
    monkeypatch.setattr(kv_aof, "MAX_ARGUMENT_BYTES", 4)
    aof = AppendOnlyFile(str(path), "always")
    aof.append([b"SET", b"k", b"1234"])
    with pytest.raises(ValueError, match="over the limit"):
        aof.append([b"SET", b"k", b"12345"])
    aof.close()
    assert replay(str(path))[0] == [[b"SET", b"k", b"1234"]]


def test_missing_and_empty_files_are_empty(tmp_path):
    """A missing file and an empty file both replay as no commands."""
    path = tmp_path / "a.aof"
    assert replay(str(path)) == ([], 0, None)
    path.write_bytes(b"")
    assert replay(str(path)) == ([], 0, None)


def test_unknown_policy_is_a_value_error(tmp_path):
    """An fsync policy outside FSYNC_POLICIES raises ValueError and creates no file."""
    with pytest.raises(ValueError, match="sometimes"):
        AppendOnlyFile(str(tmp_path / "a.aof"), "sometimes")
    assert not (tmp_path / "a.aof").exists()


CHILD = """
import sys
from reactor.apps.kv_aof import AppendOnlyFile
aof = AppendOnlyFile(sys.argv[1], "everysec")
count = 0
while True:
    aof.append([b"SET", b"key:%d" % count, b"v" * (count % 97)])
    aof.flush()
    count += 1
    if count % 100 == 0:
        sys.stdout.write("%d\\n" % count)
        sys.stdout.flush()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_loses_nothing_that_was_flushed(tmp_path):
    """After kill -9, every command the child had flushed replays, and the file is never corrupt."""
    path = tmp_path / "a.aof"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=str(ROOT), env=env,
                             stdout=subprocess.PIPE)
    output = b""
    try:
        deadline = time.monotonic() + 20.0
        while output.count(b"\n") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(child.stdout.fileno(), 4096)
                assert chunk, "the child exited early"
                output += chunk
        assert output.count(b"\n") >= 3, "the child reported nothing in time"
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        output += child.stdout.read()
        child.stdout.close()
    flushed = max(int(line) for line in output.split())
    commands, good_bytes, truncated_at = replay(str(path))
    assert len(commands) >= flushed
    assert commands == [[b"SET", b"key:%d" % n, b"v" * (n % 97)] for n in range(len(commands))]
    assert truncated_at in (None, good_bytes)

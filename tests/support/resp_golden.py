"""Golden RESP exchanges: the command sequences whose replies kv must give byte for byte.

``CASES`` is shared by the recorder (``python -m tests.support.resp_golden``,
run against a real redis-server 7 to write ``tests/golden/kv_redis7.json``)
and by ``tests/test_kv_golden.py``, which replays them against kv. Each case
runs on an empty server; its commands go one at a time, and each reply is
kept as the exact bytes that came back.

Only deterministic exchanges are here: no TTLs that could tick over, no
KEYS listings whose order is a hash table's.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "golden", "kv_redis7.json")
#: The password of the "auth" case (redis-server --requirepass, kv's token file).
PASSWORD = "secret-token"

CASES = {
    "strings": [
        ["SET", "k", "v"], ["GET", "k"], ["GET", "missing"], ["SET", "k", "v2", "GET"],
        ["SET", "k", "v3", "NX"], ["SET", "k", "v3", "XX"], ["SET", "n", "v", "XX"],
        ["SET", "n", "v", "NX", "GET"], ["GET", "n"], ["SET", "k", "v", "EX", "0"],
        ["SET", "k", "v", "EX", "x"], ["SET", "k", "v", "EX"], ["SET", "k", "v", "NX", "XX"],
        ["SET", "k", "v", "KEEPTTL", "EX", "10"], ["SET", "k", "v", "FOO"],
        ["SET", "k", "v", "PX", "-5"], ["SET", "k"], ["SET", "bin", "a\r\nb\x00c"], ["GET", "bin"],
        ["SET", "empty", ""], ["GET", "empty"], ["SET", "k", "v", "EX", "99999999999999999"],
        ["SET", "k", "v", "EXAT", "1"], ["GET", "k"], ["SET", "k", "v", "EX", "10", "EX", "20"],
        ["TTL", "k"], ["SET", "k", "v", "EX", "10", "PX", "20"],
    ],
    "counters": [
        ["SET", "c", "10"], ["INCR", "c"], ["DECR", "c"], ["INCRBY", "c", "5"],
        ["DECRBY", "c", "3"], ["INCRBY", "c", "x"], ["SET", "s", "abc"], ["INCR", "s"],
        ["SET", "big", "9223372036854775807"], ["INCR", "big"], ["SET", "lead", "007"],
        ["INCR", "lead"], ["INCR", "fresh"], ["DECRBY", "c", "-9223372036854775808"],
        ["INCR", "c", "d"], ["SET", "neg", "-5"], ["INCRBY", "neg", "-10"], ["GET", "neg"],
        ["SET", "z", "-0"], ["INCR", "z"], ["INCRBY", "neg", "-0"], ["SELECT", "-0"],
    ],
    "keys": [
        ["MSET", "a", "1", "b", "2", "c", "3"], ["MGET", "a", "b", "zz"],
        ["EXISTS", "a", "a", "zz"], ["DEL", "a", "zz"], ["KEYS", "b"], ["KEYS", "x*"],
        ["KEYS", "[^b]"], ["KEYS", "[b-b]"], ["KEYS", "\\c"], ["DBSIZE"], ["MSET", "a"], ["MSET", "a", "1", "b"],
        ["FLUSHDB"], ["DBSIZE"], ["FLUSHDB", "bad"], ["FLUSHDB", "ASYNC"], ["DEL"],
    ],
    "expiry": [
        ["SET", "k", "v"], ["TTL", "k"], ["PTTL", "k"], ["TTL", "nokey"], ["PTTL", "nokey"],
        ["EXPIRE", "k", "100"], ["TTL", "k"], ["EXPIRE", "k", "100", "NX"],
        ["EXPIRE", "k", "200", "XX"], ["TTL", "k"], ["EXPIRE", "k", "50", "GT"],
        ["EXPIRE", "k", "50", "LT"], ["TTL", "k"], ["EXPIRE", "k", "10", "NX", "XX"],
        ["EXPIRE", "k", "10", "GT", "LT"], ["EXPIRE", "k", "10", "FOO"], ["EXPIRE", "k", "x"],
        ["PERSIST", "k"], ["PERSIST", "k"], ["TTL", "k"], ["EXPIRE", "nokey", "10"],
        ["PEXPIRE", "k", "100000"], ["TTL", "k"], ["EXPIRE", "k", "-1"], ["GET", "k"],
        ["SET", "k", "v", "PX", "100000"], ["TTL", "k"], ["PERSIST", "nokey"],
        ["EXPIREAT", "k", "1"], ["EXISTS", "k"], ["EXPIRE", "k"],
    ],
    "connection": [
        ["PING"], ["PING", "hi"], ["PING", "a", "b"], ["ECHO", "x"], ["ECHO"],
        ["SELECT", "0"], ["SELECT", "x"], ["AUTH", "pw"], ["AUTH", "default", "any"],
        ["AUTH", "bob", "x"], ["HELLO", "2", "FOO"], ["HELLO", "2", "SETNAME"],
        ["HELLO", "3", "AUTH", "default"], ["CONFIG", "GET", "MAXMEMORY"],
        ["CLIENT", "SETNAME", "my-name"],
        ["CLIENT", "GETNAME"], ["CLIENT", "SETNAME", "bad name"], ["CLIENT", "FOO"],
        ["CLIENT"], ["HELLO", "x"], ["CONFIG", "GET", "save"], ["CONFIG", "GET", "appendonly"],
        ["CONFIG", "GET"], ["CONFIG", "FOO"], ["GET"], ["GET", "a", "b"], ["FOO"],
        ["FOO", "a", "b c"], ["foo", "x" * 200], ["QUIT"],
    ],
    "pubsub": [
        ["PUBLISH", "ch", "msg"], ["SUBSCRIBE", "a", "b"], ["PING"], ["PING", "x"],
        ["GET", "k"], ["PSUBSCRIBE", "n*"], ["UNSUBSCRIBE", "a"], ["PUNSUBSCRIBE"],
        ["UNSUBSCRIBE"], ["UNSUBSCRIBE"], ["PUNSUBSCRIBE"], ["GET", "k"],
        ["PSUBSCRIBE", "a*", "b*", "c*"], ["PUNSUBSCRIBE"],
    ],
    "auth": [
        ["GET", "k"], ["FOO"], ["AUTH", "wrong"], ["AUTH", "nobody", PASSWORD],
        ["HELLO", "2"], ["HELLO", "2", "AUTH", "default", "bad"],
        ["AUTH", "default", PASSWORD], ["GET", "k"], ["AUTH", PASSWORD],
    ],
}


def encode(command):
    """Return ``command`` (a list of str) as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for word in command:
        data = word.encode("latin-1")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def reply_end(buffer, start=0):
    """Return the offset just past the first whole reply in ``buffer`` (None: incomplete)."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind, rest = buffer[start:start + 1], buffer[start + 1:end]
    if kind in (b"+", b"-", b":"):
        return end + 2
    if kind == b"$":
        size = int(rest)
        return end + 2 if size < 0 else (end + 4 + size if len(buffer) >= end + 4 + size
                                         else None)
    if kind == b"*":
        position = end + 2
        for _ in range(max(int(rest), 0)):
            position = reply_end(buffer, position)
            if position is None:
                return None
        return position
    raise ValueError("not a RESP reply: %r" % buffer[start:start + 40])


#: Sent after each command (a PING with this text) so the reader knows where that
#: command's replies end: SUBSCRIBE a b answers twice, QUIT answers and closes.
SENTINEL = "end-of-replies-5a1f"


def exchange(sock, command, pump=None, timeout=5.0, sentinel=True):
    """Send one command; return the bytes of all its replies ("" if the server closed).

    With ``sentinel`` a PING follows the command and everything before its
    answer belongs to the command. Without it (the auth case, where a PING
    would be refused too) the first whole reply is the command's.
    """
    sock.sendall(encode(command) + (encode(["PING", SENTINEL]) if sentinel else b""))
    buffer, start = b"", 0
    marker = SENTINEL.encode()
    deadline = time.monotonic() + timeout
    while True:
        end = reply_end(buffer, start) if len(buffer) > start else None
        if end is not None:
            if not sentinel:
                return buffer[:end].decode("latin-1")
            if marker in buffer[start:end]:
                return buffer[:start].decode("latin-1")
            start = end
            continue
        if time.monotonic() > deadline:
            raise AssertionError("no whole reply to %r within %.1f s: %r"
                                 % (command, timeout, buffer))
        if pump is not None:
            pump()
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            return buffer.decode("latin-1")
        buffer += chunk


def record():
    """Run every case against a fresh redis-server; write GOLDEN."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt install redis-server)")
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.strip()
    golden = {"redis_server": version, "cases": {}}
    for name, commands in CASES.items():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        extra = ["--requirepass", PASSWORD] if name == "auth" else []
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"] + extra,
                                  stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except ConnectionRefusedError:
                    time.sleep(0.05)
            with sock:
                golden["cases"][name] = [[command, exchange(sock, command,
                                                            sentinel=name != "auth")]
                                         for command in commands]
        finally:
            server.terminate()
            server.wait(10)
    with open(GOLDEN, "w") as handle:
        json.dump(golden, handle, indent=1)
    print("wrote %s (%s)" % (GOLDEN, version), file=sys.stderr)


if __name__ == "__main__":
    record()

"""kv answers like redis-server 7, byte for byte: every exchange recorded from a real one.

``tests/golden/kv_redis7.json`` was written by ``python -m tests.support.resp_golden``
against redis-server 7.0.15; each case runs here on a fresh in-process kv.
"""

import json
import socket

import pytest

import reactor
from reactor.apps.kv import KVServer
from reactor.protect.auth import TokenAuth
from tests.support.resp_golden import CASES, GOLDEN, PASSWORD, exchange

with open(GOLDEN) as _handle:
    RECORDED = json.load(_handle)


def test_the_recording_covers_every_case_as_written_today():
    """The golden file was recorded from the case list as it stands (re-record after an edit)."""
    assert {name: [command for command, _ in exchanges]
            for name, exchanges in RECORDED["cases"].items()} == CASES
    assert "v=7." in RECORDED["redis_server"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_kv_replies_match_redis_server_7_byte_for_byte(case):
    """Each command of the case gets exactly the bytes redis-server 7 sent."""
    loop = reactor.Reactor()
    server = KVServer(loop, auth=TokenAuth([PASSWORD]) if case == "auth" else None)
    listener = loop.listen_tcp(server.protocol, "127.0.0.1", 0)
    sock = socket.create_connection(listener.addresses[0], timeout=5)
    sock.setblocking(False)
    try:
        got = [[command, exchange(sock, command, pump=lambda: loop.run_once(0.002),
                                  sentinel=case != "auth")]
               for command, _ in RECORDED["cases"][case]]
        assert got == RECORDED["cases"][case]
    finally:
        sock.close()
        listener.close()
        loop.run_once(0)
        loop.close()

"""The protection switches of ``python -m reactor echo`` and ``chat``, as a user runs them."""

import signal
import time

import pytest

from reactor import Protocol, Reactor
from reactor.protect.auth import FAILURE_MESSAGE

from .support.loops import run_until
from .support.peers import Peer
from .support.processes import run_cli, start_cli_on_port

TOKEN = "cli-token-0123456789"


def stop(process):
    """SIGTERM the server; return its stderr after checking it exited 0."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    return err


def connect(address, source=None):
    """A raw client of a server in another process (nothing to pump but the socket)."""
    return Peer(None, address, source)


def test_echo_with_token_per_ip_cap_deny_list_and_stats(tmp_path):
    """Token auth, --max-per-ip, --deny and the stats line (interval and SIGUSR1) together."""
    tokens = tmp_path / "tokens"
    tokens.write_text("other-token\n%s\n" % TOKEN)
    process, address = start_cli_on_port("echo", "--port", "0", "--auth-token-file", str(tokens),
                                         "--max-per-ip", "1", "--deny", "127.0.0.9/32",
                                         "--stats-interval", "0.2")
    try:
        with connect(address) as client:
            client.send(TOKEN.encode() + b"\nhello")
            client.wait(lambda: len(client.received) >= 5)
            assert client.received == b"hello"
            with connect(address) as second:                 # over --max-per-ip
                second.wait_closed()
                assert second.received == b""
            with connect(address, "127.0.0.9") as denied:
                denied.wait_closed()
                assert denied.received == b""
            with connect(address, "127.0.0.2") as wrong:
                wrong.send(b"guess\n")
                wrong.wait_closed()
                assert wrong.received == FAILURE_MESSAGE + b"\n"
            time.sleep(0.3)                                  # let an interval line pass
            process.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
    finally:
        err = stop(process)
    stats_lines = [line for line in err.splitlines() if " stats " in line]
    assert len(stats_lines) >= 2, err
    assert "rejected: filter=1 per_ip=1 auth=1" in stats_lines[-1], err


def test_chat_wants_the_token_before_the_nick(tmp_path):
    """chat --auth-token-file: the first line is the token; the welcome comes after it."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    process, address = start_cli_on_port("chat", "--port", "0", "--auth-token-file", str(tokens))
    try:
        with connect(address) as member:
            member.send(TOKEN.encode() + b"\n")
            assert member.line().startswith("welcome to reactor chat")
        with connect(address) as stranger:
            stranger.send(b"alice\n")
            stranger.wait_closed()
            assert stranger.received == FAILURE_MESSAGE + b"\n"
    finally:
        stop(process)


def test_psk_echo_with_length_framing_and_the_client_helper(tmp_path):
    """echo --psk-file --framing length serves a connect_tcp(psk=...) client."""
    key = "k" * 32
    (tmp_path / "psk").write_text(key + "\n")
    process, address = start_cli_on_port("echo", "--port", "0", "--framing", "length",
                                         "--psk-file", str(tmp_path / "psk"))
    loop = Reactor()
    frame = b"\0\0\0\x05frame"
    received = []
    lost = []

    class Client(Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.write(frame)

        def data_received(self, data):
            received.append(data)

        def connection_lost(self, exc):
            lost.append(exc)
    try:
        connector = loop.connect_tcp(Client, *address, psk=key)
        run_until(loop, lambda: len(b"".join(received)) >= len(frame), timeout=10)
        assert b"".join(received) == frame                 # the echo, framed as sent
        assert connector.error is None
        connector.protocol.transport.close()
        run_until(loop, lambda: lost, timeout=10)
        assert lost == [None]
    finally:
        loop.close()
        stop(process)


def test_rate_limited_echo_still_echoes_everything():
    """echo --rate shapes a fast sender without losing a byte."""
    process, address = start_cli_on_port("echo", "--port", "0", "--rate", "200000",
                                         "--msg-rate", "1000", "--ip-rate", "400000",
                                         "--idle-timeout", "30")
    payload = bytes(range(256)) * 1000
    try:
        with connect(address) as client:
            assert client.exchange(payload, timeout=10) == payload
    finally:
        stop(process)


@pytest.mark.parametrize("args,message", [
    (["--auth-token-file", "/nonexistent/tokens"], "cannot use /nonexistent/tokens"),
    (["--deny", "10.0.0.0/40"], "bad protection option: deny"),
    (["--max-per-ip", "0"], "max_per_ip must be >= 1"),
    (["--rate", "-5"], "bad protection option"),
    (["--idle-timeout", "-1"], "idle_timeout_seconds must be"),
    (["--stats-interval", "0"], "--stats-interval must be > 0"),
    (["--udp", "--rate", "100"], "--udp takes only --host and --port"),
])
def test_bad_protection_options_fail_with_a_clear_message(args, message):
    """A bad protection option exits non-zero with one line naming it, no traceback."""
    result = run_cli("echo", "--port", "0", *args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_short_psk_and_two_auth_kinds_are_refused(tmp_path):
    """A PSK under 16 bytes, or both auth files at once, is refused before listening."""
    (tmp_path / "short").write_text("tiny\n")
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    for args, message in [(["--psk-file", str(tmp_path / "short")], "at least 16 bytes"),
                          (["--psk-file", str(tmp_path / "short"), "--auth-token-file",
                            str(tmp_path / "tokens")], "exclude each other")]:
        result = run_cli("echo", "--port", "0", *args)
        assert result.returncode != 0 and message in result.stderr, result.stderr

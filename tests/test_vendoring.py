"""Vendoring: reactor/ copied alone into a folder works from an isolated interpreter."""

import glob
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reactor")

# The script runs with -I (no site-packages, no user site, no PYTHON* env vars)
# and only the vendor folder on sys.path; it echoes through a real loop.
SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import reactor
    from reactor.apps.echo import EchoProtocol
    assert reactor.__file__.startswith(sys.argv[1]), reactor.__file__
    MESSAGE = b"ping through a vendored reactor"
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    received = bytearray()

    class Client(reactor.Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(MESSAGE)

        def data_received(self, data):
            received.extend(data)
            if received == MESSAGE:
                self.transport.close()
                loop.stop()

    loop.connect_tcp(Client, "127.0.0.1", server.addresses[0][1])
    loop.call_later(10, loop.stop)
    loop.run(stop_on_signals=False)
    server.close()

    # The newer layers too: a framer, a UDP echo and a TLS echo.
    from reactor.apps.echo import DatagramEchoProtocol
    from reactor.framing import LengthPrefixFramer
    from reactor.tls import client_context, server_context
    framer = LengthPrefixFramer()
    assert framer.feed(framer.encode(b"frame")[:3]) == []
    assert framer.feed(framer.encode(b"frame")[3:]) == [b"frame"]
    datagrams = []

    class Listener(reactor.DatagramProtocol):
        def datagram_received(self, data, addr):
            datagrams.append(data)
    udp_server = loop.listen_udp(DatagramEchoProtocol, "127.0.0.1", 0)
    udp_client = loop.connect_udp(Listener, "127.0.0.1", udp_server.get_extra_info("sockname")[1])
    udp_client.sendto(b"datagram")
    tls_server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_context(
        sys.argv[2] + "/server.pem", sys.argv[2] + "/server.key"))
    tls_received = bytearray()

    class TLSClient(reactor.Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"over tls")

        def data_received(self, data):
            tls_received.extend(data)
            if tls_received == b"over tls" and datagrams:
                loop.stop()
    loop.connect_tcp(TLSClient, "127.0.0.1", tls_server.addresses[0][1],
                     ssl=client_context(cafile=sys.argv[2] + "/ca.pem"),
                     server_hostname="localhost")
    loop.call_later(10, loop.stop)
    loop.run(stop_on_signals=False)
    assert datagrams == [b"datagram"] and tls_received == b"over tls", (datagrams, tls_received)

    # And the protections: a PSK-authenticated, rate-limited, idle-timed server.
    from reactor.protect.auth import PskAuth
    from reactor.policy import Rate
    key = b"vendored-key-0123456789"
    guarded = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, auth=PskAuth([key]),
                              limits=reactor.Limits(idle_timeout_seconds=30, max_per_ip=4,
                                                    rate_bytes=Rate(1e6), deny=["10.0.0.0/8"]))
    guarded_received = bytearray()

    class PskClient(reactor.Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"after psk")

        def data_received(self, data):
            guarded_received.extend(data)
            if guarded_received == b"after psk":
                loop.stop()
    loop.connect_tcp(PskClient, "127.0.0.1", guarded.addresses[0][1], psk=key)
    loop.call_later(10, loop.stop)
    loop.run(stop_on_signals=False)
    assert guarded_received == b"after psk", guarded_received
    print(received.decode(), sys.version_info[:2])
    loop.close()
""")


def runs(python):
    """Tell whether ``python`` starts (a pyenv shim for an unselected version does not)."""
    try:
        return subprocess.run([python, "-c", "pass"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


def interpreters():
    """The running interpreter, plus a CPython 3.8 when one is installed (the floor)."""
    found = [pytest.param(sys.executable, id="current")]
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    candidates += [shutil.which("python3.8")]
    floor = next((c for c in candidates if c and runs(c)), None)
    found.append(pytest.param(floor, id="python3.8",
                              marks=pytest.mark.skipif(
                                  floor is None, reason="no python3.8 interpreter on this machine")))
    return found


@pytest.mark.parametrize("python", interpreters())
def test_vendored_copy_runs_in_isolated_interpreter(python, tmp_path):
    """A copy of reactor/ alone imports and echoes (TCP, UDP, TLS) under `python -I`."""
    vendor = tmp_path / "vendor"
    shutil.copytree(PACKAGE, str(vendor / "reactor"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    certs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
    result = subprocess.run([python, "-I", "-c", SCRIPT, str(vendor), certs],
                            capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ping through a vendored reactor"), result.stdout

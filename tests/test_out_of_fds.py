"""Running out of file descriptors: a server sheds load, stays idle, and recovers."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from .support.processes import ROOT, cpu_seconds


EMFILE_SERVER = textwrap.dedent("""
    import logging, resource, sys
    sys.path.insert(0, sys.argv[1])
    import reactor
    from reactor.apps.echo import EchoProtocol
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0,
                             limits=reactor.Limits(accept_backoff_seconds=0.05))
    print(server.addresses[0][1], flush=True)
    loop.run()
    print("stats", server.stats(), flush=True)
    loop.close()
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc to read CPU time")
def test_out_of_fds_server_sheds_load_without_spinning_and_recovers():
    """At RLIMIT_NOFILE the server closes new clients promptly, stays idle, and serves again later."""
    process = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER, ROOT],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clients = []
    try:
        port = int(process.stdout.readline())
        for _ in range(60):                       # well past the 40-fd limit
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            clients.append(sock)
        time.sleep(0.3)
        shed = 0
        for sock in clients:
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    shed += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                shed += 1
        assert shed >= 1, "no pending client was closed while out of fds"
        before = cpu_seconds(process.pid)
        time.sleep(1.0)
        spent = cpu_seconds(process.pid) - before
        assert spent < 0.5, "server used %.2f s of CPU in 1 s while out of fds" % spent
        for sock in clients:
            sock.close()
        clients = []
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"alive again")
            assert sock.recv(100) == b"alive again"
    finally:
        for sock in clients:
            sock.close()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert err.count("out of file descriptors") >= 1
    assert "accepting connections again" in err
    stats = out.split("stats", 1)[1]
    assert "'out_of_fds_episodes': " in stats and "'rejected_out_of_fds': 0" not in stats

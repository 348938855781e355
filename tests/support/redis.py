"""redis-server processes for tests: each on a free port of 127.0.0.1, all stopped at the end.

The ``redis`` fixture (``tests/conftest.py``) hands a test a :class:`RedisServers`;
outside CI a missing redis-server skips the test, in CI it fails it.
"""

import socket
import subprocess
import time

from .certs import CA, cert
from .peers import free_port


class RedisServers:
    """redis-server processes (``--save '' --appendonly no``), all killed at the end."""

    def __init__(self, binary, directory):
        self.binary, self.directory = binary, directory
        self.processes = []

    def start(self, *options, port=None, tls=False):
        """Start one (on ``port`` if given; TLS only, with the test certificate, if ``tls``);
        return its port once it accepts connections."""
        port = port or free_port()
        ports = ["--port", str(port)]
        if tls:
            certfile, keyfile = cert("server")
            ports = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", certfile,
                     "--tls-key-file", keyfile, "--tls-ca-cert-file", CA,
                     "--tls-auth-clients", "no"]
        process = subprocess.Popen(
            [self.binary] + ports + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                     "--daemonize", "no", "--dir", str(self.directory)]
            + list(options), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError("redis-server exited: %s" % process.stdout.read()[-300:])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not accept within 10 s"
                time.sleep(0.02)

    def stop(self, timeout=10):
        """Terminate the newest running server (a clean SHUTDOWN) and wait for it."""
        process = [p for p in self.processes if p.poll() is None][-1]
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self):
        """kill -9 the newest running server, and wait for it."""
        process = [p for p in self.processes if p.poll() is None][-1]
        process.kill()
        process.wait(10)

    def stop_all(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            process.stdout.close()

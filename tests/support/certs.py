"""TLS contexts for tests, built from the certificates in ``tests/certs/`` (``make-certs.sh``).

=============  ==========================================================
``server``     localhost, 127.0.0.1 and ::1; signed by ``ca.pem``
``expired``    localhost, but valid only during 2000
``wronghost``  wrong.example only
=============  ==========================================================
"""

import os

from reactor.tls import client_context, server_context

CERTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "certs")
#: The test CA every test certificate is signed by.
CA = os.path.join(CERTS, "ca.pem")
#: The name the ``server`` certificate is for.
SERVER_HOSTNAME = "localhost"


def cert(name):
    """Return the ``(certfile, keyfile)`` paths of test certificate ``name``."""
    return os.path.join(CERTS, name + ".pem"), os.path.join(CERTS, name + ".key")


def server_ctx(name="server"):
    """Return a server context presenting test certificate ``name``."""
    return server_context(*cert(name))


def client_ctx():
    """Return a client context that trusts the test CA (and checks host names)."""
    return client_context(cafile=CA)


def raw_tls_client(loop, address):
    """Connect a plain ``ssl`` client socket trusting the test CA to ``address`` and finish
    its handshake while ``loop`` (serving the other end) runs; return it, non-blocking.

    For tests that misbehave below TLS: ``socket.socket.sendall(tls, data)`` writes to the
    TCP connection directly, bypassing the TLS layer.
    """
    import socket
    import ssl

    from .loops import run_until
    context = ssl.create_default_context(cafile=CA)
    tls = context.wrap_socket(socket.create_connection(address, timeout=5),
                              server_hostname=SERVER_HOSTNAME, do_handshake_on_connect=False)
    tls.setblocking(False)

    def handshake():
        try:
            tls.do_handshake()
            return True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
    run_until(loop, handshake)
    return tls

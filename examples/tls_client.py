"""A TLS echo server, and a client that verifies the server's certificate.

Teaches: TLS is a layer between the transport and your protocol (``ssl=``
on ``listen_tcp`` and ``connect_tcp``), so the echo below is the plain one;
``connection_made`` comes after the handshake, and ``get_extra_info`` says
what was agreed. The client checks the certificate against a CA it trusts
(``client_context(cafile=...)``) for the name it dialled
(``server_hostname``); a client that does not trust that CA never gets
``connection_made``: its ``on_error`` receives the ``ssl.SSLError``.
The certificate is the test suite's throwaway one, made with ``openssl`` by
``tests/certs/make-certs.sh`` (localhost, signed by ``tests/certs/ca.pem``);
a real server passes its own to ``server_context(certfile, keyfile)``.

    python3 examples/tls_client.py             # TLS echo on 127.0.0.1:7105, then:
    openssl s_client -connect 127.0.0.1:7105 -CAfile tests/certs/ca.pem -quiet
    python3 examples/tls_client.py --selftest  # a verified client, a refused one, exit
"""
import os
import ssl
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
import reactor  # noqa: E402  (found in the checkout above, no install needed)
from reactor.tls import client_context, server_context  # noqa: E402

PORT, CERTS = 7105, os.path.join(ROOT, "tests", "certs")
outcomes = []


class Echo(reactor.Protocol):
    def data_received(self, data):
        self.transport.write(data)


class Hello(reactor.Protocol):
    """The self-test's client: say hello over TLS, keep the echo, close."""

    def connection_made(self, transport):
        super().connection_made(transport)
        cipher, version, _ = transport.get_extra_info("cipher")
        print("client: the certificate for localhost checks out; %s, %s" % (version, cipher))
        transport.write(b"hello over TLS")

    def data_received(self, data):
        outcomes.append(data)
        self.transport.close()                     # sends close_notify first
        connect(client_context(), refused)         # now one that does not trust our CA


def refused(exc):
    print("client without our CA: refused (%s)" % exc.__class__.__name__)
    outcomes.append(exc)
    reactor.get_running_loop().stop()


def connect(context, on_error):
    reactor.get_running_loop().connect_tcp(Hello, "127.0.0.1", server.addresses[0][1],
                                           ssl=context, server_hostname="localhost",
                                           on_error=on_error)


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_tcp(Echo, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT,
                             ssl=server_context(os.path.join(CERTS, "server.pem"),
                                                os.path.join(CERTS, "server.key")))
    print("TLS echo on 127.0.0.1:%d" % server.addresses[0][1])
    if "--selftest" in sys.argv:
        trusting = client_context(cafile=os.path.join(CERTS, "ca.pem"))
        loop.call_soon(connect, trusting, sys.exit)           # any error here ends the test
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if "--selftest" in sys.argv:
        assert outcomes[0] == b"hello over TLS", outcomes
        assert isinstance(outcomes[1], ssl.SSLCertVerificationError), outcomes
        print("selftest ok")

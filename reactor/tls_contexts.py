"""TLS settings: the contexts servers and clients use, and TLS errors in one line.

Kept apart from the TLS layer (``tls.py``, which re-exports these names:
``reactor.tls.server_context`` is the documented path) because they are
configuration and wording, not the byte path: a context is made once per
server or client, and an error described once per failure.
"""

import ssl
from typing import Optional

#: OpenSSL reasons that usually mean the peer spoke plaintext to a TLS port.
PLAINTEXT_REASONS = frozenset(("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
                               "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"))


def describe_tls_error(exc: BaseException) -> str:
    """Say in one line why a TLS handshake failed, with a hint where one helps."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate rejected: %s" % (exc.verify_message or exc.reason)
    reason = getattr(exc, "reason", None)
    if reason in PLAINTEXT_REASONS:
        return "%s (plaintext sent to a TLS port?)" % reason
    if reason:
        return "%s (%s)" % (reason, exc)
    return str(exc) or type(exc).__name__


def client_context(verify: bool = True, cafile: Optional[str] = None) -> ssl.SSLContext:
    """Return a client context that verifies certificates and host names (TLS 1.2 minimum)."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = max(context.minimum_version, ssl.TLSVersion.TLSv1_2)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(certfile: str, keyfile: Optional[str] = None) -> ssl.SSLContext:
    """Return a server context for ``certfile`` / ``keyfile`` (TLS 1.2 minimum)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context

"""Socket addresses: checking what the user asked for, and printing what we got.

Three small jobs that every layer needs and none owns:

* ``check_port`` and ``listen_host`` turn a user's ``host`` and ``port``
  into what ``getaddrinfo`` and ``bind`` take, or raise
  :class:`~reactor.errors.InvalidAddressError` saying what to pass. Without
  them, port 83536 binds port 18000 (the socket module truncates it to 16
  bits), and ``host=''`` fails deep inside ``getaddrinfo``.
* ``format_address`` renders an address for a log line: ``HOST:PORT``,
  ``[V6]:PORT`` or a Unix path.
* ``peer_ip`` turns a peer's address into an ``ipaddress`` object, with an
  IPv4-mapped IPv6 address (``::ffff:10.1.2.3``) unwrapped to the IPv4
  address it is; filters and per-client counts judge clients by it.

Pure functions on plain values: no sockets, no loop.
"""

import ipaddress
from typing import Any, Optional, Union

from .errors import InvalidAddressError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def check_port(port: Any, what: str, allow_zero: bool = True) -> int:
    """Return ``port`` if it is an int in 0-65535 (1-65535 without ``allow_zero``).

    Raises :class:`InvalidAddressError` naming the call (``what``) otherwise:
    a string ``"8080"``, a float, a bool or 70000 are all mistakes worth
    hearing about at once rather than as a wrapped port or a late TypeError.
    """
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise InvalidAddressError("%s: port must be an int in %d-65535%s, got %s %r"
                                  % (what, low, " (0 picks a free one)" if allow_zero else "",
                                     type(port).__name__, port))
    return port


def listen_host(host: Any, what: str) -> Optional[str]:
    """Return the host to bind: None (and ``''``) mean every interface, as in asyncio."""
    if host is None or host == "":
        return None
    if not isinstance(host, str):
        raise InvalidAddressError("%s: host must be a string such as '127.0.0.1' or '::1' "
                                  "(None or '' for every interface), got %r" % (what, host))
    return host


def connect_host(host: Any, what: str) -> str:
    """Return ``host`` if it names a peer; there is no 'every interface' to connect to."""
    if not isinstance(host, str) or not host:
        raise InvalidAddressError("%s: host must be a non-empty string such as '127.0.0.1', "
                                  "'::1' or 'example.com', got %r" % (what, host))
    return host


def format_address(address: Any) -> str:
    """Render a socket address for a log line: ``HOST:PORT``, ``[V6]:PORT`` or a Unix path."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return "[%s]:%s" % (host, port) if ":" in str(host) else "%s:%s" % (host, port)
    if isinstance(address, bytes):                  # a Linux abstract Unix address
        return repr(address)
    return str(address) if address else "a local peer"


def peer_ip(address: Any) -> Optional[IPAddress]:
    """Return the peer's IP address, IPv4-mapped IPv6 unwrapped; None for Unix peers."""
    if isinstance(address, tuple):
        address = address[0]
    if not address or not isinstance(address, str) or address.startswith("/"):
        return None
    ip = ipaddress.ip_address(address.partition("%")[0])      # drop a zone (fe80::1%eth0)
    if ip.version == 6 and ip.ipv4_mapped is not None:          # type: ignore[union-attr]
        return ip.ipv4_mapped                                   # type: ignore[union-attr]
    return ip

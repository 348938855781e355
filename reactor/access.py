"""Who may connect: allow and deny lists of networks, and what counts as "one client".

The server asks two questions right after ``accept()``, before any
protocol code runs for the connection:

``AccessFilter.allows(address)``
    Deny wins: an address in any denied network is refused; otherwise, if
    there is an allow list, the address must be in one of its networks.
    IPv4 clients of a dual-stack (IPv6) socket arrive as IPv4-mapped
    addresses (``::ffff:10.1.2.3``); they are judged as the IPv4 address
    they are, so ``--deny 10.0.0.0/8`` works whichever socket they used.

``client_key(address)``
    The key per-client limits count under: the IPv4 address, or the IPv6
    address's ``/64`` network (one host usually owns a whole /64, so
    counting single IPv6 addresses would give each host 2**64 allowances).

Unix-socket peers have no address; they are always allowed and are not
counted per client.

Cost: ``allows`` is linear in the number of networks listed (a few
hundred nanoseconds each); it runs once per accepted connection, never per
byte. A list of thousands of networks would want a prefix trie instead.
"""

import ipaddress
from typing import Any, Optional, Sequence, Tuple, Union

from .policy import Network, parse_networks

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class AccessFilter:
    """Allow and deny lists of IPv4 and IPv6 networks; deny wins."""

    __slots__ = ("allow", "deny")

    def __init__(self, allow: Sequence[Any] = (), deny: Sequence[Any] = ()) -> None:
        self.allow: Tuple[Network, ...] = parse_networks(allow, "allow")
        self.deny: Tuple[Network, ...] = parse_networks(deny, "deny")

    def __bool__(self) -> bool:
        """Tell whether the filter can refuse anyone at all."""
        return bool(self.allow or self.deny)

    def allows(self, address: Any) -> bool:
        """Tell whether a peer at ``address`` (a socket address or IP string) may connect."""
        ip = peer_ip(address)
        if ip is None:
            return True                       # a Unix-socket peer
        for network in self.deny:
            if ip in network:                 # an IPv4 address is never "in" a v6 net: no error
                return False
        if not self.allow:
            return True
        for network in self.allow:
            if ip in network:
                return True
        return False

    def __repr__(self) -> str:
        return "<AccessFilter allow=%s deny=%s>" % (
            [str(n) for n in self.allow], [str(n) for n in self.deny])


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


def format_address(address: Any) -> str:
    """Render a socket address for a log line: ``HOST:PORT``, ``[V6]:PORT`` or a Unix path."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    return str(address) or "a local peer"


def client_key(address: Any, ipv6_prefix_length: int = 64) -> Optional[str]:
    """Return the key a client is counted under (``"10.1.2.3"``, ``"2001:db8::/64"``), or None."""
    ip = peer_ip(address)
    if ip is None:
        return None
    if ip.version == 4 or ipv6_prefix_length >= 128:
        return str(ip)
    return str(ipaddress.ip_network((ip, ipv6_prefix_length), strict=False))

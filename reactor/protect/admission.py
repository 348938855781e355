"""Admission: who may connect, what counts as one client, and what each connection gets.

The server (``server.py``) hands every accepted connection to an
:class:`Admission` when its ``Limits`` or ``auth`` ask for protections, and
asks three things, before any protocol code runs::

    admit(address)        -> the client's record, or a ProtectionError (refused)
    wrap(app, client)     -> the protocol the transport calls: a Guard, or the app
    closed(client)        <- the connection ended

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

A :class:`ClientRecord` per client key holds what its connections share:
their count (for ``max_per_ip``) and the per-address rate buckets. A record
outlives its last connection until its buckets have refilled ("resting"),
so a client cannot buy a fresh burst by reconnecting.

Unix-socket peers have no address; they are always allowed and are not
counted per client.

Cost: ``allows`` is linear in the number of networks listed (a few
hundred nanoseconds each); it runs once per accepted connection, never per
byte. A list of thousands of networks would want a prefix trie instead.
"""

import ipaddress
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence, Tuple

from ..addresses import peer_ip
from ..errors import AccessDeniedError, ProtectionError
from ..policy import Limits, Network, parse_networks
from .guard import Guard
from .ratelimit import bucket


#: Resting client records kept at most (about 0.3 KB each).
MAX_RESTING_CLIENTS = 65536


class Admission:
    """A server's door for protected connections; see the module docstring.

    ``counters`` is the server's counter dict (guards count rate pauses in it).
    """

    def __init__(self, loop: Any, limits: Limits, auth: Any,
                 counters: Dict[str, int]) -> None:
        self._loop = loop
        self._limits = limits
        self._auth = auth
        self._counters = counters
        self._filter = AccessFilter(limits.allow, limits.deny)
        self._guarded = needs_guard(limits, auth)
        self._track_clients = limits.max_per_ip is not None or bool(
            limits.ip_rate_bytes or limits.ip_rate_messages)
        #: client key (address, or IPv6 /64) -> what its connections share
        self._clients: Dict[str, ClientRecord] = {}
        #: keys of clients with no open connection whose buckets are still
        #: refilling, oldest first: forgetting them would hand a client that
        #: reconnects a fresh burst
        self._resting: "OrderedDict[str, None]" = OrderedDict()

    def admit(self, address: Any) -> Optional["ClientRecord"]:
        """Return the client's record (None if not tracked), or raise ``ProtectionError``.

        The error's ``reason`` (``filter``, ``per_ip``) is what the server
        counts the refusal under. An admitted client is counted as connected.
        """
        if self._filter and not self._filter.allows(address):
            raise AccessDeniedError("address not allowed")
        if not self._track_clients:
            return None
        limits = self._limits
        key = client_key(address, limits.ipv6_prefix_length)
        if key is None:
            return None
        client = self._clients.get(key)
        if client is None:
            self._forget_settled_clients()
            client = self._clients[key] = ClientRecord(key, limits, self._loop.time())
        elif not client.connections:
            del self._resting[key]
        elif limits.max_per_ip is not None and client.connections >= limits.max_per_ip:
            refusal = ProtectionError("%d connections open from %s, the per-client limit"
                                      % (limits.max_per_ip, key))
            refusal.reason = "per_ip"
            raise refusal
        client.connections += 1
        return client

    def wrap(self, app: Any, client: Optional["ClientRecord"]) -> Any:
        """Return what the transport below should call: a Guard around ``app``, or ``app``."""
        if not self._guarded:
            return app
        return Guard(self._loop, app, self._limits, client, self._auth, self._counters)

    def closed(self, client: Optional["ClientRecord"]) -> None:
        """A connection of ``client`` ended (or never started): forget what is settled."""
        if client is None:
            return
        client.connections -= 1
        if client.is_settled(self._loop.time()):
            del self._clients[client.key]
        elif not client.connections:
            self._resting[client.key] = None

    def stats(self) -> Dict[str, int]:
        """Return ``clients`` (with open connections) and ``clients_resting``."""
        return {"clients": len(self._clients) - len(self._resting),
                "clients_resting": len(self._resting)}

    def _forget_settled_clients(self) -> None:
        """Look at up to four resting clients, oldest first; forget those that have refilled.

        Called once per new client, so resting records cannot pile up faster
        than new clients arrive. One still refilling goes to the back of the
        line rather than blocking the sweep (a client with a long wait must
        not keep thousands of settled records behind it). Past
        ``MAX_RESTING_CLIENTS`` the oldest is forgotten regardless: a bound
        on memory, at the price of a fresh burst for that one client.
        """
        now = self._loop.time()
        resting = self._resting
        for _ in range(4):
            if not resting:
                return
            key, _ = resting.popitem(last=False)     # O(1); a dict's front is not, once
            if self._clients[key].is_settled(now) or len(resting) >= MAX_RESTING_CLIENTS:
                del self._clients[key]                # it has many deletions behind it
            else:
                resting[key] = None                  # to the back of the line


class ClientRecord:
    """What one client address shares across its connections: a count and rate buckets."""

    __slots__ = ("key", "connections", "bytes_bucket", "messages_bucket")

    def __init__(self, key: str, limits: Limits, now: float) -> None:
        self.key = key
        self.connections = 0
        self.bytes_bucket = bucket(limits.ip_rate_bytes, now)
        self.messages_bucket = bucket(limits.ip_rate_messages, now)

    def is_settled(self, now: float) -> bool:
        """Tell whether forgetting this client now would give it nothing it has not earned
        (no open connection, every bucket full again)."""
        return not self.connections and all(
            b is None or b.is_full(now) for b in (self.bytes_bucket, self.messages_bucket))


def needs_guard(limits: Limits, auth: Any) -> bool:
    """Tell whether ``limits`` and ``auth`` ask for anything only a guard can enforce."""
    return bool(auth is not None or limits.idle_timeout_seconds or
                limits.first_frame_timeout_seconds or limits.rate_bytes or
                limits.rate_messages or limits.ip_rate_bytes or limits.ip_rate_messages)


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


def client_key(address: Any, ipv6_prefix_length: int = 64) -> Optional[str]:
    """Return the key a client is counted under (``"10.1.2.3"``, ``"2001:db8::/64"``), or None."""
    ip = peer_ip(address)
    if ip is None:
        return None
    if ip.version == 4 or ipv6_prefix_length >= 128:
        return str(ip)
    return str(ipaddress.ip_network((ip, ipv6_prefix_length), strict=False))

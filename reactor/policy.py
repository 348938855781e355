"""Limits as plain data: every place bytes or connections pile up has a number here.

One frozen :class:`Limits` per server (or client) holds them all, with safe
defaults, so a reader can see in one screen what a connection may cost and
an operator can change any of it in one place. Nothing here does anything;
the transports, guards and servers read these numbers where they enforce
them:

===============================  =====================================  ================  =======
numbers                          enforced in                            default           clients
===============================  =====================================  ================  =======
water marks, read sizes          ``streams.py``, ``datagrams.py``       64 KiB / 16 KiB   yes
send buffer hard / soft caps     ``streams.py``                         32 MiB / 8 MiB    yes
datagrams per event, queue       ``datagrams.py``                       64, 256 KiB       yes
datagram reflection ports        ``datagrams.py`` (listening sockets)   10 ports, < 1024  no
frames per pass                  ``framed.py``                          64                yes
frame progress timeout           ``framed.py``                          30 s              yes
input budget (held input)        ``server.py``, ``buffers.py``          64 MiB            no
accept batch, backlog, back-off  ``server.py``                          64, 1024, 0.1 s   no
max_connections                  ``server.py``                          no cap            no
connect timeout                  ``client.py``                          10 s              yes
per-IP cap, allow / deny         ``protect/admission.py``               off               no
idle / first-frame timeouts      ``protect/guard.py``                   off               yes
auth timeout                     ``protect/guard.py``, ``client_auth``  10 s              yes
per-connection rates, debt cap   ``protect/shaper.py`` (``ratelimit``)  off, 60 s         yes
per-address rates, abuse log     ``protect/``                           off, 10 s         no
===============================  =====================================  ================  =======

The last column says which fields a client (``connect_tcp`` and friends)
honours; ``connect_*`` refuses a ``Limits`` that sets one it cannot, rather
than ignore it. On a client, the timeouts and rates apply to what the
*server* sends: a first frame within ``first_frame_timeout_seconds``, no
silence longer than ``idle_timeout_seconds``, reading shaped to the rate.

Why are timeouts, rates and per-IP caps off by default? Each one closes or
slows connections that are legitimate in some application (a quiet chat
member, a bulk upload, a thousand clients behind one NAT), so the right
number depends on the application; ``python -m reactor echo --help`` shows
the switches. The caps that are on by default only bound memory, and no
client that reads what it is sent ever meets them.
"""

import ipaddress
from dataclasses import dataclass, fields, replace
from typing import Any, List, Optional, Sequence, Tuple, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: ``per_second`` units on average, bursts of ``burst``.

    The unit is the field's: bytes for the byte rates, messages (frames, or
    reads for a raw protocol) for the message rates. ``burst`` defaults to
    one second's worth.
    """

    per_second: float
    burst: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0 < self.per_second < float("inf"):
            raise ValueError("a rate must be a finite number > 0 per second, got %r"
                             % (self.per_second,))
        if self.burst is None:
            object.__setattr__(self, "burst", float(max(self.per_second, 1)))
        elif not 0 < self.burst < float("inf"):
            raise ValueError("a burst must be a finite number > 0, got %r" % (self.burst,))


@dataclass(frozen=True)
class Limits:
    """Per-server limits; defaults suit a public server on a small machine."""

    #: Above this many queued bytes the protocol is told ``pause_writing()``.
    high_water_bytes: int = 64 * 1024
    #: Below this many queued bytes the protocol is told ``resume_writing()``.
    low_water_bytes: int = 16 * 1024
    #: Bytes one recv() asks for (a datagram socket: its reused receive buffer).
    #: Above 64 KiB, glibc serves each read's allocation with mmap: slower.
    read_chunk_bytes: int = 64 * 1024
    #: Bytes read from one connection per readiness event before the loop
    #: moves on: one firehose connection cannot starve the others.
    max_read_per_event_bytes: int = 256 * 1024
    #: Connections accepted per readiness event of a listening socket.
    accept_batch: int = 64
    #: Open connections per server; beyond it new ones are accepted and
    #: closed at once (and counted). None: no limit but the fd limit.
    max_connections: Optional[int] = None
    #: The listen() backlog (the kernel caps it at net.core.somaxconn).
    backlog: int = 1024
    #: Pause before accepting again after the process ran out of fds.
    accept_backoff_seconds: float = 0.1
    #: Default connect timeout for clients (resolution + connect).
    connect_timeout_seconds: float = 10.0
    #: Datagrams read per readiness event of a datagram socket (fairness).
    datagrams_per_event: int = 64
    #: Bytes of datagrams waiting for a full socket buffer; beyond this,
    #: new datagrams are dropped and counted (a late datagram is worth less
    #: than a lost one, and the loop must never block).
    datagram_queue_bytes: int = 256 * 1024
    #: Datagrams from these source ports are dropped and counted: the
    #: services of reflection and loop attacks (echo, daytime, chargen, time,
    #: DNS, NTP, SNMP, SSDP, memcached), which no client sends from.
    datagram_blocked_source_ports: Tuple[int, ...] = (7, 13, 17, 19, 37, 53, 123, 161, 1900,
                                                      11211)
    #: Accept datagrams from source ports below 1024 (those are services, not
    #: clients: answering them is how reflection loops start).
    datagram_allow_low_source_ports: bool = False

    # -- bounded work and memory per read (framed protocols) -------------------
    #: Frames a framed protocol is handed per loop pass; the rest wait, with
    #: reading paused, for the next pass: one connection cannot hold the loop.
    frames_per_pass: int = 64
    #: A frame that has begun must be complete this long after its first byte
    #: (trickling more bytes does not extend it). None: no limit.
    frame_progress_timeout_seconds: Optional[float] = 30.0
    #: Bytes held in partial frames across all connections of a server; past
    #: it the largest holders are closed (``input_budget``). None: no cap. The
    #: default suits the small machines reactor is vendored into; raise it
    #: with many connections that legitimately send large frames slowly.
    max_buffered_input_bytes: Optional[int] = 64 * 1024 * 1024

    # -- slow consumers (Redis's client-output-buffer-limit) --------------------
    #: A send buffer above this is dropped at once and the connection closed
    #: (``SlowConsumerError``). None: no cap.
    send_buffer_hard_cap_bytes: Optional[int] = 32 * 1024 * 1024
    #: A send buffer above this for ``send_buffer_soft_cap_seconds`` in a row
    #: closes the connection too. None: no soft cap. (Above the hard cap it
    #: never acts: lowering the hard cap alone is enough.)
    send_buffer_soft_cap_bytes: Optional[int] = 8 * 1024 * 1024
    send_buffer_soft_cap_seconds: float = 60.0

    # -- who may connect (servers) --------------------------------------------
    #: Open connections per client address; beyond it new ones are closed at once.
    max_per_ip: Optional[int] = None
    #: IPv6 clients are counted by network, not by address: one host usually
    #: owns a whole /64, and would otherwise get 2**64 separate allowances.
    ipv6_prefix_length: int = 64
    #: Networks allowed to connect (CIDR strings or ``ipaddress`` networks);
    #: empty: everyone not denied. Unix-socket peers are not filtered.
    allow: Tuple[Any, ...] = ()
    #: Networks refused; deny wins over allow.
    deny: Tuple[Any, ...] = ()

    # -- timeouts (servers; one timer per connection, reset on activity) -------
    #: Close a connection after this long without a byte in either direction.
    idle_timeout_seconds: Optional[float] = None
    #: Close a connection that has not completed its first frame this long
    #: after connecting (the first byte, for raw protocols): slowloris.
    first_frame_timeout_seconds: Optional[float] = None
    #: With auth on: close a connection not authenticated this long after connecting.
    auth_timeout_seconds: float = 10.0

    # -- rate limits (token buckets; see ratelimit.py) --------------------------
    #: Per connection, bytes received.
    rate_bytes: Optional[Rate] = None
    #: Per connection, messages received (frames; one read for raw protocols).
    rate_messages: Optional[Rate] = None
    #: Per client address (all its connections together), bytes received.
    ip_rate_bytes: Optional[Rate] = None
    #: Per client address, messages received.
    ip_rate_messages: Optional[Rate] = None
    #: Over a rate: "shape" (stop reading until the bucket refills; TCP slows
    #: the sender and nothing is lost) or "disconnect" (``RateLimitError``).
    rate_action: str = "shape"
    #: A connection or client address whose rate debt (the time it would take
    #: to repay what it sent over its rates) passes this is disconnected
    #: (``RateLimitError``) rather than shaped for ever.
    max_rate_debt_seconds: float = 60.0

    #: Abuse (rejections, timeouts, bad frames) is logged once per reason per
    #: this interval, plus a count of what was not logged: an attack cannot
    #: flood the log.
    abuse_log_interval_seconds: float = 10.0

    def __post_init__(self) -> None:
        optional = {f.name for f in fields(self) if f.default is None}
        for name in _NUMBER_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise ValueError("%s must be a number%s, got %s %r" % (
                    name, " or None" if name in optional else "", type(value).__name__, value))
        if not 0 <= self.low_water_bytes <= self.high_water_bytes:
            raise ValueError("need 0 <= low_water_bytes (%d) <= high_water_bytes (%d)"
                             % (self.low_water_bytes, self.high_water_bytes))
        for name in ("read_chunk_bytes", "max_read_per_event_bytes", "accept_batch", "backlog",
                     "datagrams_per_event", "datagram_queue_bytes", "frames_per_pass"):
            if getattr(self, name) < 1:
                raise ValueError("%s must be >= 1, got %r" % (name, getattr(self, name)))
        if self.max_connections is not None and self.max_connections < 0:
            raise ValueError("max_connections must be >= 0 or None, got %r"
                             % (self.max_connections,))
        for name in ("accept_backoff_seconds", "connect_timeout_seconds",
                     "send_buffer_soft_cap_seconds", "auth_timeout_seconds",
                     "abuse_log_interval_seconds", "idle_timeout_seconds",
                     "first_frame_timeout_seconds", "frame_progress_timeout_seconds",
                     "max_rate_debt_seconds"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                raise ValueError("%s must be a finite number > 0, got %r" % (name, value))
        for name in ("max_per_ip", "send_buffer_hard_cap_bytes", "send_buffer_soft_cap_bytes",
                     "max_buffered_input_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError("%s must be >= 1 or None, got %r" % (name, value))
        if not 0 <= self.ipv6_prefix_length <= 128:
            raise ValueError("ipv6_prefix_length must be 0-128, got %r"
                             % (self.ipv6_prefix_length,))
        if self.rate_action not in ("shape", "disconnect"):
            raise ValueError("rate_action must be 'shape' or 'disconnect', got %r"
                             % (self.rate_action,))
        for name in ("rate_bytes", "rate_messages", "ip_rate_bytes", "ip_rate_messages"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Rate):
                raise ValueError("%s must be a policy.Rate or None, got %r" % (name, value))
        ports = tuple(self.datagram_blocked_source_ports)
        if any(isinstance(p, bool) or not isinstance(p, int) or not 0 < p < 65536 for p in ports):
            raise ValueError("datagram_blocked_source_ports must hold ports 1-65535, got %r"
                             % (self.datagram_blocked_source_ports,))
        object.__setattr__(self, "datagram_blocked_source_ports", ports)
        object.__setattr__(self, "allow", parse_networks(self.allow, "allow"))
        object.__setattr__(self, "deny", parse_networks(self.deny, "deny"))

    def with_changes(self, **changes: object) -> "Limits":
        """Return a copy with some fields changed (validated again).

        Raises ``ValueError`` naming the field for a value of the wrong type
        (``max_per_ip="3"``), as for an out-of-range one.
        """
        try:
            return replace(self, **changes)
        except TypeError as exc:
            raise ValueError("Limits.with_changes(%s): %s" % (
                ", ".join("%s=%r" % item for item in changes.items()), exc)) from None

    def protections_asked(self) -> List[str]:
        """Return the names of the fields set here that only ``reactor/protect/`` enforces."""
        return [name for name in PROTECTION_FIELDS if getattr(self, name)]

    def fields_changed(self, names: Sequence[str]) -> List[str]:
        """Return which of the fields ``names`` differ from their defaults."""
        return [name for name in names if getattr(self, name) != getattr(DEFAULT_LIMITS, name)]


def parse_networks(networks: Any, what: str = "network") -> Tuple[Network, ...]:
    """Return ``networks`` (CIDR strings or network objects) as a tuple of networks.

    Host bits are allowed (``10.1.2.3/8`` means ``10.0.0.0/8``) and a bare
    address is a one-address network. An IPv4-mapped IPv6 network
    (``::ffff:127.0.0.0/104``) becomes the IPv4 network it names
    (``127.0.0.0/8``): clients are judged by their IPv4 address, so the
    mapped form would otherwise never match. Raises ``ValueError`` naming
    the bad entry.
    """
    if isinstance(networks, (str, bytes)):
        networks = (networks,)
    parsed = []
    for entry in networks:
        if isinstance(entry, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            network = entry
        else:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except (ValueError, TypeError):
                raise ValueError("%s: %r is not an IPv4 or IPv6 network (CIDR, such as "
                                 "10.0.0.0/8 or 2001:db8::/32)" % (what, entry)) from None
        parsed.append(_unmapped(network))
    return tuple(parsed)


def _unmapped(network: Network) -> Network:
    """Return an IPv4-mapped IPv6 network (inside ``::ffff:0:0/96``) as its IPv4 network."""
    if (network.version == 6 and network.prefixlen >= 96
            and network.network_address.ipv4_mapped is not None):  # type: ignore[union-attr]
        return ipaddress.ip_network((network.network_address.ipv4_mapped,  # type: ignore
                                     network.prefixlen - 96))
    return network


#: Fields holding a number (or None where the default is None); checked first,
#: so that Limits(max_per_ip="3") says so rather than failing on a comparison.
_NUMBER_FIELDS = ("high_water_bytes", "low_water_bytes", "read_chunk_bytes",
                  "max_read_per_event_bytes", "accept_batch", "max_connections", "backlog",
                  "accept_backoff_seconds", "connect_timeout_seconds", "datagrams_per_event",
                  "datagram_queue_bytes", "send_buffer_hard_cap_bytes",
                  "send_buffer_soft_cap_bytes", "send_buffer_soft_cap_seconds", "max_per_ip",
                  "ipv6_prefix_length", "idle_timeout_seconds", "first_frame_timeout_seconds",
                  "auth_timeout_seconds", "abuse_log_interval_seconds", "frames_per_pass",
                  "frame_progress_timeout_seconds", "max_buffered_input_bytes",
                  "max_rate_debt_seconds")
DEFAULT_LIMITS = Limits()

#: Fields only the protections wing can enforce (a vendored core without
#: ``reactor/protect/`` refuses them).
PROTECTION_FIELDS = ("allow", "deny", "max_per_ip", "idle_timeout_seconds",
                     "first_frame_timeout_seconds", "rate_bytes", "rate_messages",
                     "ip_rate_bytes", "ip_rate_messages")
#: Fields that mean something only to a server; ``connect_*`` refuses them.
SERVER_ONLY_FIELDS = ("accept_batch", "max_connections", "backlog", "accept_backoff_seconds",
                      "max_per_ip", "ipv6_prefix_length", "allow", "deny", "ip_rate_bytes",
                      "ip_rate_messages", "abuse_log_interval_seconds",
                      "max_buffered_input_bytes")


def water_marks(high: Optional[int] = None, low: Optional[int] = None) -> "tuple":
    """Return ``(high, low)`` with asyncio's defaults filled in, or raise ValueError.

    Defaults: high = 4 x low (64 KiB when both are None); low = high / 4.
    Raises ``ValueError`` unless 0 <= low <= high.
    """
    if high is None:
        high = 4 * low if low is not None else 64 * 1024
    if low is None:
        low = high // 4
    if not 0 <= low <= high:
        raise ValueError("need 0 <= low (%r) <= high (%r)" % (low, high))
    return high, low

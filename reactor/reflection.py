"""Reflection: which datagrams a listening UDP socket must never answer.

A UDP echo answers whoever a datagram says it came from, and UDP source
addresses are not checked by anyone. One datagram spoofed from the server's
own address and port makes an echo answer itself for ever (a core at 100%);
one spoofed from another echo server starts a ping-pong between the two;
one "from" a chargen or DNS port turns the server into an amplifier
(CVE-1999-0103). inetd's internal echo drops such datagrams; so does a
``DatagramTransport`` on a listening socket, before the protocol sees them,
counting each kind in its ``stats()``:

=========================  ==========================================================
``dropped_reflected``      the source is this host *and* our own port
``dropped_source_port``    the source port is below 1024 (a service's, unless
                           ``Limits.datagram_allow_low_source_ports``) or in
                           ``Limits.datagram_blocked_source_ports``
=========================  ==========================================================

Cost per datagram: one set lookup of the source port (the set holds the
blocked ports and our own), so ordinary traffic pays about 60 ns. Only a
datagram from our own port has its address looked at. Two echo servers on
*different* high ports can still be started into a ping-pong: per-source
rates (``protect/datagram_guard.py``) end that one.
"""

import errno
import socket
from typing import Any, Dict, Optional

from .addresses import peer_ip
from .policy import Limits

#: Source hosts remembered as "this host" or not (a bind() probe each); the
#: cache is cleared when full, so spoofed sources cannot grow it.
LOCAL_HOST_CACHE_SIZE = 256
#: Why each kind of screened datagram was dropped, for the log.
DROP_REASONS = {
    "dropped_reflected": "its source is this host and our own port (a reflection loop)",
    "dropped_source_port": "its source port is a service's, not a client's (reflection)",
}


class ReflectionFilter:
    """Which sources a listening UDP socket bound to ``sockname`` must not answer.

    ``screened_ports`` holds every source port worth a second look (the
    blocked ones and our own); ``refuses`` is asked only about those.
    "This host" means loopback, unspecified, the bound address, or one a
    socket can bind here (a probe, cached; only ``EADDRNOTAVAIL`` says
    "not here", so with ``ip_nonlocal_bind`` every host looks local). An
    address the host gains later counts once the cache is next cleared.
    """

    __slots__ = ("screened_ports", "_blocked_ports", "_own_port", "_own_host", "_local_hosts")

    def __init__(self, sockname: Any, limits: Limits) -> None:
        blocked = set(limits.datagram_blocked_source_ports)
        if not limits.datagram_allow_low_source_ports:
            blocked.update(range(1024))
        self._blocked_ports = frozenset(blocked)
        self._own_host, self._own_port = sockname[0], sockname[1]
        self.screened_ports = self._blocked_ports | {self._own_port}
        #: source host -> whether it is this host (bounded: cleared when full)
        self._local_hosts: Dict[str, bool] = {}

    def refuses(self, address: Any) -> Optional[str]:
        """Return the counter a datagram from ``address`` is dropped under, or None to deliver it."""
        port = address[1]
        if port == self._own_port and self.is_this_host(address):
            return "dropped_reflected"
        if port in self._blocked_ports:
            return "dropped_source_port"
        return None

    def is_this_host(self, address: Any) -> bool:
        """Tell whether the host of ``address`` is this machine (see the class docstring)."""
        host = address[0]
        verdict = self._local_hosts.get(host)
        if verdict is None:
            try:
                verdict = host == self._own_host or _is_this_host(address)
            except OSError:
                return True         # cannot tell (out of fds?): drop to be safe, don't cache
            if len(self._local_hosts) >= LOCAL_HOST_CACHE_SIZE:
                self._local_hosts.clear()
            self._local_hosts[host] = verdict
        return verdict


class DropLog:
    """Tell which drops to log: the first of each *episode*, which ends after
    ``quiet_seconds`` without a drop of that reason (a flood costs one line)."""

    __slots__ = ("quiet_seconds", "_last_drop")

    def __init__(self, quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self._last_drop: Dict[str, float] = {}

    def starts_episode(self, reason: str, now: float) -> bool:
        """Record a drop for ``reason`` at ``now``; tell whether it begins an episode."""
        last = self._last_drop.get(reason)
        self._last_drop[reason] = now
        return last is None or now - last >= self.quiet_seconds


def _is_this_host(address: Any) -> bool:
    """Tell whether ``address``'s host is loopback, unspecified, or assigned to this host.

    Raises ``OSError`` when a probe socket cannot even be made.
    """
    ip = peer_ip(address)
    if ip is None:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    if ip.version == 4:
        family, probe_address = socket.AF_INET, (str(ip), 0)
    else:
        scope_id = address[3] if len(address) > 3 else 0
        family, probe_address = socket.AF_INET6, (str(ip), 0, 0, scope_id)
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(probe_address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True

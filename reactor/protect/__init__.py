"""The protections wing: what a server facing the internet adds to the textbook core.

A first reading of reactor can skip this folder: the loop, the transports
and the servers work without it, and a vendored copy may delete it (the
core then refuses ``Limits`` that ask for a protection, with a clear
error). What lives here, and where the server calls it:

==================  =====================================  ==========================
protection          module                                 when it runs
==================  =====================================  ==========================
allow / deny lists  ``admission.py`` (``AccessFilter``)    once per accepted connection
per-IP caps         ``admission.py`` (``ClientRecord``)    once per accepted connection
idle, first-frame   ``guard.py`` (one wheel timer per      per read (a timestamp write)
and auth timeouts   connection, reset lazily)
rate limits         ``shaper.py`` + ``ratelimit.py``       per read (two subtractions)
                    (GCRA buckets, paid before delivery)
auth (token, PSK)   ``auth.py`` (sans-I/O handshakes),     until the peer is in
                    ``guard.py`` (server),
                    ``client_auth.py`` (client)
UDP per source      ``datagram_guard.py`` (allow/deny,     per datagram
                    per-source rates, a bounded table)
abuse log           ``abuselog.py``                        per rejection (rate-limited)
==================  =====================================  ==========================

The numbers all come from one ``reactor.Limits`` (``policy.py``); the
caps that only bound memory (send-buffer caps, ``max_connections``, frame
limits) are core, not here, since every server needs them.
docs/PROTECTIONS.md is the user's guide.
"""

from .abuselog import AbuseLog
from .admission import AccessFilter, Admission, ClientRecord, client_key, needs_guard
from .auth import PskAuth, TokenAuth
from .client_auth import ClientAuth
from .datagram_guard import DatagramGuard
from .guard import Guard

__all__ = ["AbuseLog", "AccessFilter", "Admission", "ClientRecord", "ClientAuth",
           "DatagramGuard", "Guard",
           "PskAuth", "TokenAuth", "client_key", "needs_guard"]

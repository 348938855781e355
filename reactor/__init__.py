"""reactor: a small, fast, readable event-driven socket framework (stdlib only).

The reading order, one question per stop (docs/LEARN.md walks it, naming
the function to open at each stop)::

    1. loop.py        what does one pass of the loop do?
    2. poller.py      how does the loop learn which sockets are ready?
    3. wakeup.py      how do other threads and signals wake a sleeping loop?
    4. timers.py      what is a handle, a timer, a timer backend? (the heap twin)
    5. wheel.py       how does a timing wheel schedule and cancel in O(1)?
    6. protocols.py   what will be called on your code, in what order?
    7. transports.py  what does every socket transport share? (one failure policy)
    8. buffers.py     where do outgoing bytes wait?
    9. streams.py     where does a byte come in and go out? (backpressure)
   10. datagrams.py   what changes when messages are datagrams?
   11. framing/       how do bytes become messages, sans I/O?
   12. framed.py      how does a protocol receive whole messages?
   13. tls.py         how does a layer sit between a transport and a protocol?
   14. sockets.py     how is a listening socket made?
   15. accept.py      how are connections accepted, even out of fds?
   16. server.py      how is a connection admitted, stacked, shut down?
   17. client.py      how does a non-blocking connect work?
   18. network.py     Reactor = the loop + listen_* / connect_*

Then, off the main path: ``clock.py`` (the injectable clock),
``policy.py`` (every limit as data), ``addresses.py``, ``errors.py``;
``protect/`` (the protections a public server adds; skip on a first
reading); ``apps/`` (the servers behind ``python -m reactor``).
To watch the loop run: ``debug.py`` (slow callbacks, named) and
``trace.py`` (``loop.start_trace``: every pass, as a Perfetto trace).
To test without a kernel: ``testing.py`` (a fake network with scripted
faults). To see the classic bugs happen: ``lessons/``
(``python -m reactor lesson NAME``, docs/CLASSIC-BUGS.md).
"""

import sys

from .clock import FakeClock
from .errors import (AccessDeniedError, AuthenticationError, BadFileDescriptorError,
                     ConnectError, ConnectRefusedError, ConnectTimeoutError,
                     DatagramTooLargeError, FirstFrameTimeoutError, FrameTimeoutError,
                     FramingError, InputBudgetError,
                     IdleTimeoutError, InvalidAddressError, InvalidDelayError, LoopClosedError,
                     LoopRunningError, NoRunningLoopError, NotCallableError, ProtectionError,
                     ProtectionsUnavailableError, RateLimitError, ReactorError,
                     SignalHandlerError, SlowConsumerError, TimerCancelledError,
                     TLSHandshakeTimeoutError, TransportClosedError, WrongThreadError)
from .loop import EventLoop
from .timers import Periodic
from .wakeup import get_running_loop
from .network import Reactor
from .policy import Limits, Rate
from .server import Server
from .client import Connector
from .streams import StreamTransport
from .datagrams import DatagramTransport
from .tls import TLSTransport
from . import framing
from .framed import FramedProtocol
from .protocols import BaseProtocol, DatagramProtocol, Layer, Protocol
from .timers import Handle, HeapTimers, Timer
from .wheel import TimerWheel

try:                                   # the protections wing; a vendored copy may omit it
    from .protect import PskAuth, TokenAuth
    from .protect import auth as _auth
    # Keep ``reactor.auth`` (its home before the protections moved into a
    # wing) importable for code written against it.
    sys.modules.setdefault(__name__ + ".auth", _auth)
except ImportError:
    TokenAuth = PskAuth = None  # type: ignore[assignment,misc]

__version__ = "0.2.0"

__all__ = [
    "Reactor", "EventLoop", "get_running_loop", "Periodic", "Limits", "Rate", "Server",
    "Connector", "StreamTransport", "DatagramTransport", "TLSTransport", "FakeClock",
    "Handle", "Timer", "TimerWheel", "HeapTimers",
    "BaseProtocol", "Protocol", "DatagramProtocol", "FramedProtocol", "Layer", "framing",
    "TokenAuth", "PskAuth",
    "ReactorError", "LoopClosedError", "LoopRunningError", "NoRunningLoopError",
    "WrongThreadError", "InvalidDelayError", "NotCallableError", "BadFileDescriptorError",
    "SignalHandlerError", "InvalidAddressError", "FramingError", "ConnectError",
    "ConnectRefusedError", "ConnectTimeoutError", "TransportClosedError",
    "TimerCancelledError", "DatagramTooLargeError", "TLSHandshakeTimeoutError",
    "ProtectionError", "ProtectionsUnavailableError", "AccessDeniedError", "IdleTimeoutError",
    "FirstFrameTimeoutError", "FrameTimeoutError", "InputBudgetError", "RateLimitError",
    "SlowConsumerError", "AuthenticationError",
]

"""reactor: a small, fast, readable event-driven socket framework (stdlib only).

Start with the loop (``reactor/loop.py``); then the protocols
(``protocols.py``) your code implements, the stream transport
(``streams.py``) that calls them, and the timers (``timers.py``,
``wheel.py``). :class:`Reactor` (``network.py``) is the loop plus
``listen_tcp`` / ``connect_tcp`` and friends. ``python -m reactor --help`` runs the servers.
"""

from .clock import FakeClock
from .errors import (BadFileDescriptorError, ConnectError, ConnectRefusedError,
                     ConnectTimeoutError, FramingError, InvalidDelayError, LoopClosedError,
                     LoopRunningError, NotCallableError, ReactorError, SignalHandlerError,
                     TransportClosedError, DatagramTooLargeError, TLSHandshakeTimeoutError)
from .loop import EventLoop
from .network import Reactor
from .policy import Limits
from .server import Server
from .client import Connector
from .streams import StreamTransport
from .datagrams import DatagramTransport
from .tls import TLSTransport
from . import framing
from .framed import FramedProtocol
from .protocols import BaseProtocol, DatagramProtocol, Protocol
from .timers import Handle, HeapTimers, Timer, TimerCancelledError
from .wheel import TimerWheel

__version__ = "0.1.0"

__all__ = [
    "Reactor", "EventLoop", "Limits", "Server", "Connector", "StreamTransport", "DatagramTransport", "TLSTransport", "FakeClock", "Handle", "Timer", "TimerWheel", "HeapTimers",
    "BaseProtocol", "Protocol", "DatagramProtocol", "FramedProtocol", "framing",
    "ReactorError", "LoopClosedError", "LoopRunningError", "InvalidDelayError",
    "NotCallableError", "BadFileDescriptorError", "SignalHandlerError", "FramingError",
    "ConnectError", "ConnectRefusedError", "ConnectTimeoutError", "TransportClosedError",
    "TimerCancelledError", "DatagramTooLargeError", "TLSHandshakeTimeoutError",
]

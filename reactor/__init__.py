"""reactor: a small, fast, readable event-driven socket framework (stdlib only).

Start with :class:`Reactor` (``reactor/loop.py``), the loop; then the
protocols (``protocols.py``) your code implements, and the timers
(``timers.py``, ``wheel.py``). ``python -m reactor --help`` runs the servers.
"""

from .clock import FakeClock
from .errors import (BadFileDescriptorError, ConnectError, ConnectRefusedError,
                     ConnectTimeoutError, FramingError, InvalidDelayError, LoopClosedError,
                     LoopRunningError, NotCallableError, ReactorError, SignalHandlerError,
                     TransportClosedError)
from .loop import Reactor
from .protocols import BaseProtocol, DatagramProtocol, Protocol
from .timers import Handle, HeapTimers, Timer, TimerCancelledError
from .wheel import TimerWheel

__version__ = "0.1.0"

__all__ = [
    "Reactor", "FakeClock", "Handle", "Timer", "TimerWheel", "HeapTimers",
    "BaseProtocol", "Protocol", "DatagramProtocol",
    "ReactorError", "LoopClosedError", "LoopRunningError", "InvalidDelayError",
    "NotCallableError", "BadFileDescriptorError", "SignalHandlerError", "FramingError",
    "ConnectError", "ConnectRefusedError", "ConnectTimeoutError", "TransportClosedError",
    "TimerCancelledError",
]

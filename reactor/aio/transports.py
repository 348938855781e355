"""reactor's transports, speaking asyncio's transport interface.

An asyncio protocol on ``reactor.aio`` is driven by the same
``StreamTransport`` and ``DatagramTransport`` that reactor's own servers use:
the poller calls ``on_readable`` directly and ``data_received`` follows, two
calls from the wait. The subclasses here change only what asyncio's contract
says differently from reactor's, and do what the left column says:

======================================  ===================================
asyncio's contract (these classes)      reactor's own transports
======================================  ===================================
``write()`` after ``close()`` is        ``TransportClosedError``
queued while the buffer drains, then
dropped quietly
``write()`` after ``write_eof()``       ``TransportClosedError``
raises ``RuntimeError``
a ``BufferedProtocol`` is filled with   no buffered protocols
``get_buffer``/``buffer_updated``
``get_extra_info("socket")`` is a       the socket itself
``TransportSocket`` wrapper
no send-buffer caps                     slow consumers closed at 8/32 MiB
every UDP source port is delivered      reflection-prone ports dropped
a server counts its connections         reactor's ``Server`` counts them
(``Server._attach``/``_detach``)
``write()`` during ``loop.sendfile()``  (no sendfile on the loop)
raises ``RuntimeError``
======================================  ===================================

A kept difference: once *both* directions are shut (``write_eof()`` sent,
EOF received), the stream transport closes itself and ``connection_lost``
follows; asyncio waits for ``close()``. Nothing more can cross such a
connection, and streams code calls ``close()`` anyway.

Discussion: a protocol may change kind mid-connection (``start_tls`` hands
a plain connection to ``sslproto.SSLProtocol``, a ``BufferedProtocol`` on
3.11+). asyncio stores the right read method in an attribute; we switch the
transport's class between :class:`AioStreamTransport` and
:class:`AioBufferedStreamTransport`, two classes with the same slots. The
plain read path then stays reactor's ``on_readable`` itself, with no test
and no extra frame per read.
"""

import asyncio
import os
import socket
from asyncio import constants, trsock
from typing import Any, Dict, Optional

from ..datagrams import DatagramTransport
from ..policy import Limits
from ..streams import StreamTransport
from ..buffers import immutable_tail
from ..transports import _CLOSING, _OPEN

__all__ = ["AIO_LIMITS", "AioStreamTransport", "AioBufferedStreamTransport",
           "AioDatagramTransport", "make_stream_transport"]

#: asyncio's semantics have no send-buffer caps and no UDP source screening;
#: everything else (read sizes, water marks: 64 KiB / 16 KiB) is reactor's default.
AIO_LIMITS = Limits(send_buffer_hard_cap_bytes=None, send_buffer_soft_cap_bytes=None,
                    datagram_blocked_source_ports=(), datagram_allow_low_source_ports=True)

_READ = 1   # selectors.EVENT_READ


class AioStreamTransport(StreamTransport, asyncio.Transport):
    """A stream transport for an ``asyncio.Protocol`` (``data_received``)."""

    __slots__ = ("_server", "_sendfile_waiter")

    _start_tls_compatible = True                            # loop.start_tls() may wrap us
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any,
                 extra: Optional[Dict[str, Any]] = None, server: Any = None) -> None:
        extra = dict(extra or ())
        peername = extra.pop("peername", None)
        # asyncio records both addresses at once: they outlive the socket.
        try:
            extra["sockname"] = sock.getsockname()
            if peername is None:
                peername = sock.getpeername()
        except OSError:
            pass
        super().__init__(loop, sock, protocol, peername=peername, limits=AIO_LIMITS, extra=extra)
        self._server = server
        self._sendfile_waiter: Any = None
        if server is not None:
            server._attach()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:                            # asyncio sets it on every TCP transport
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._match_protocol(protocol)

    def set_protocol(self, protocol: Any) -> None:
        """Call ``protocol`` from now on; a ``BufferedProtocol`` is read into its own buffer."""
        self._protocol = protocol
        self._match_protocol(protocol)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return a detail by name; ``socket`` is asyncio's ``TransportSocket`` wrapper."""
        if name == "socket":
            return trsock.TransportSocket(self._sock)
        if name == "sockname":
            return self._extra.get(name, default)
        return super().get_extra_info(name, default)

    @property
    def _protocol_paused(self) -> bool:
        """Whether the protocol is told to pause writing (3.8's sslproto reads this name)."""
        return self._writing_paused

    def _match_protocol(self, protocol: Any) -> None:
        buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self.__class__ = AioBufferedStreamTransport if buffered else AioStreamTransport

    def _refuse_write(self, data: Any) -> None:
        if self._eof_pending:
            raise RuntimeError("Cannot call write() after write_eof()")
        # asyncio still queues bytes after close() while the buffer drains
        # (sslproto relies on it: its close_notify follows its close()), and
        # drops them quietly once the connection is gone.
        if self._state is _CLOSING and self._send_buffer is not None and data:
            self._enqueue(immutable_tail(data, 0))

    def _force_close(self, exc: Optional[BaseException]) -> None:
        """Close at once and hand ``exc`` to ``connection_lost`` (``sslproto`` calls this)."""
        self._send_buffer = None
        self._close_now(exc)

    def _call_connection_lost(self, exc: Optional[BaseException]) -> None:
        waiter, self._sendfile_waiter = self._sendfile_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("the connection closed during sendfile()"))
        try:
            super()._call_connection_lost(exc)
        finally:
            server, self._server = self._server, None
            if server is not None:
                server._detach()

    # loop.sendfile(): the loop's _sendfile_native and _sendfile_fallback drive these.
    def begin_sendfile(self) -> bool:
        """Enter sendfile mode: reading paused, ``write()`` refused; return whether it was reading.

        The file's bytes go around the send buffer, so a ``write()`` meanwhile
        could land in the middle of them (asyncio refuses it the same way).
        """
        was_reading = self.is_reading()
        self.pause_reading()
        self.__class__ = AioSendfileStreamTransport
        return was_reading

    def end_sendfile(self, was_reading: bool) -> None:
        """Leave sendfile mode: writes allowed again, reading as before."""
        self._match_protocol(self._protocol)
        if was_reading:
            self.resume_reading()

    def sendfile_ready(self, waiter: "asyncio.Future[None]") -> None:
        """Resolve ``waiter`` once nothing is queued and the socket is writable.

        If the connection ends first, ``waiter`` fails with ``ConnectionError``
        (``connection_lost`` does it), so ``sendfile()`` cannot wait forever.
        """
        if self._state is not _OPEN:
            waiter.set_exception(ConnectionError("the connection closed during sendfile()"))
            return
        self._sendfile_waiter = waiter
        self.wait_writable(self._sendfile_writable)

    def _sendfile_writable(self) -> None:
        waiter, self._sendfile_waiter = self._sendfile_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AioBufferedStreamTransport(AioStreamTransport):
    """A stream transport for an ``asyncio.BufferedProtocol``: read into the protocol's buffer."""

    __slots__ = ()

    def on_readable(self) -> None:
        """Ask the protocol for a buffer, ``recv_into`` it, and say how much arrived."""
        # Hot path for TLS on 3.11+ (sslproto is a BufferedProtocol).
        if not self._interest & _READ:
            return
        protocol = self._protocol
        buffer = protocol.get_buffer(-1)
        if not len(buffer):
            raise RuntimeError("get_buffer() returned an empty buffer")
        try:
            received = self._sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc)
            return
        if not received:
            self._peer_eof()
            return
        self.bytes_received += received
        protocol.buffer_updated(received)


class AioSendfileStreamTransport(AioStreamTransport):
    """A stream transport while ``loop.sendfile()`` runs: ``write()`` is refused."""

    __slots__ = ()

    def write(self, data: Any) -> None:
        """Refuse: the file's bytes are going out around the send buffer."""
        raise RuntimeError("unable to write; sendfile is in progress")


class AioDatagramTransport(DatagramTransport, asyncio.Transport, asyncio.DatagramTransport):
    """A datagram transport for an ``asyncio.DatagramProtocol``."""

    __slots__ = ()

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any,
                 address: Any = None) -> None:
        super().__init__(loop, sock, protocol, peer=address, limits=AIO_LIMITS)

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send one datagram; after ``close()`` it is dropped, as asyncio does."""
        if self._state is _OPEN:
            DatagramTransport.sendto(self, data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return a detail by name; ``socket`` is asyncio's ``TransportSocket`` wrapper."""
        if name == "socket":
            return trsock.TransportSocket(self._sock)
        if name == "peername" and self._peer is not None:
            return self._peer
        return super().get_extra_info(name, default)


def make_stream_transport(loop: Any, sock: socket.socket, protocol: Any,
                          extra: Optional[Dict[str, Any]] = None,
                          server: Any = None) -> AioStreamTransport:
    """Build the transport for an accepted or connected stream socket."""
    return AioStreamTransport(loop, sock, protocol, extra, server)


def file_size(file: Any) -> int:
    """Return the size of a regular file object, or raise asyncio's SendfileNotAvailableError."""
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError) as exc:
        raise asyncio.SendfileNotAvailableError("not a regular file: %s" % exc) from None

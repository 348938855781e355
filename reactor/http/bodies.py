"""How a response body leaves once its head is sent: pushed, pulled, or from a file.

The three producers of ``server.py``'s answers, each paced by the socket so
a body never piles up in memory::

    ResponseWriter   the handler pushes chunks (write/end); it asks is_paused()
                     and hears on_resume, as a live stream must
    IterableSender   the server pulls chunks from an iterable while the send
                     buffer is under its high-water mark; resume_writing pulls again
    FileSender       os.sendfile on a plain socket, one call per writable event
                     (transport.wait_writable); under TLS, where the kernel cannot
                     encrypt, reads written as the buffer drains

The connection calls ``resume()`` on its current producer from
``resume_writing``; a producer calls the connection's ``_done()`` when its
body is complete, and the connection goes on with the next request.
"""

import logging
import os
from typing import Any, Callable, Optional

from ..errors import FramingError
from .messages import FileBody
from .parser import END_CHUNKS, format_chunk

logger = logging.getLogger("reactor")

FILE_CHUNK_BYTES = 256 * 1024        #: one sendfile call (or one read, under TLS) per writable event
_HAS_SENDFILE = hasattr(os, "sendfile")


class ResponseWriter:
    """Push a chunked response body: ``write(data)`` as it is made, then ``end()``.

    ``is_paused()`` tells when the peer reads slower than the writer
    writes; ``on_resume``, if set, is called when it catches up.
    """

    def __init__(self, connection: Any, head_only: bool, chunked: bool) -> None:
        self._connection, self._head_only, self.chunked = connection, head_only, chunked
        self.ended = False
        self.on_resume: Optional[Callable[[], Any]] = None

    def write(self, data: bytes) -> None:
        """Send one piece of the body (bytes, or str as UTF-8; nothing for HEAD or an empty piece)."""
        if self.ended:
            raise RuntimeError("write() after end() on this response")
        if type(data) is str:
            data = data.encode("utf-8")
        if data and not self._head_only and not self._connection.transport.is_closing():
            self._connection.transport.write(format_chunk(data) if self.chunked else data)
            self._connection.body_bytes_sent += len(data)

    def end(self) -> None:
        """Finish the body; the connection goes on with the next request."""
        if self.ended:
            return
        self.ended = True
        connection = self._connection
        if not connection.transport.is_closing():
            if self.chunked and not self._head_only:
                connection.transport.write(END_CHUNKS)
            connection._done()

    def is_paused(self) -> bool:
        """Tell whether the send buffer is over its high-water mark."""
        return self._connection._write_paused

    def resume(self) -> None:
        """The socket drained: tell the writer's owner."""
        if self.on_resume is not None:
            self.on_resume()


class IterableSender:
    """Pull chunks from an iterable body while the socket keeps up."""

    def __init__(self, writer: ResponseWriter, chunks: Any) -> None:
        self._writer, self._chunks = writer, chunks
        writer._connection._producer = self

    def close(self) -> None:
        """The connection ended first: close a generator, so its ``finally`` runs now."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def resume(self) -> None:
        writer = self._writer
        connection = writer._connection
        while not connection._write_paused and not connection.transport.is_closing():
            try:
                chunk = next(self._chunks)
            except StopIteration:
                writer.end()
                return
            except Exception:
                logger.exception("response body iterator for %s raised; aborting the "
                                 "connection (its head is sent)", connection.client)
                connection.transport.abort()
                return
            writer.write(chunk)


class FileSender:
    """Send a FileBody: ``os.sendfile`` on a plain socket, else reads written as they drain.

    Either way one piece goes per writable event (at most
    ``FILE_CHUNK_BYTES``), so the send buffer never holds more than a piece
    and other connections are served between pieces.
    """

    def __init__(self, connection: Any, body: FileBody) -> None:
        self._connection, self._file = connection, body.file
        self._offset, self._remaining = body.offset, body.length
        transport = connection.transport
        self._use_sendfile = (_HAS_SENDFILE and hasattr(transport, "sendfile")
                              and transport.get_extra_info("ssl_object") is None)
        if not self._use_sendfile:
            self._file.seek(self._offset)

    def resume(self) -> None:
        connection = self._connection
        transport = connection.transport
        if transport.is_closing() or connection._producer is not self:
            return
        count = min(self._remaining, FILE_CHUNK_BYTES)
        if not self._use_sendfile:
            if connection._write_paused:
                return                            # resume_writing calls us again
            data = self._file.read(count)
            sent = len(data)
            if sent:
                transport.write(data)
        elif transport.get_write_buffer_size():
            transport.wait_writable(self.resume)
            return
        else:
            try:
                sent = transport.sendfile(self._file, self._offset, count)
            except (BlockingIOError, InterruptedError):
                transport.wait_writable(self.resume)
                return
            except OSError as exc:
                logger.debug("sendfile to %s failed: %s", connection.client, exc)
                transport.abort()
                return
        if not sent:
            transport.close_with_error(FramingError(
                "file shrank while being sent: %d bytes short" % self._remaining), flush=False)
            return
        self._offset += sent
        self._remaining -= sent
        connection.body_bytes_sent += sent
        if not self._remaining:
            self.close()
            connection._done()
        elif self._use_sendfile:
            transport.wait_writable(self.resume)
        elif not connection._write_paused:
            transport.loop.call_soon(transport.run_protected, self.resume)

    def close(self) -> None:
        self._file.close()

"""An HTTP connection's deadlines: one wheel timer, moved from one kind to the next.

Each connection waits for at most one thing at a time, so one timer serves
every deadline; it is moved with ``reset`` (O(1) on the wheel), never
cancelled and made anew per request::

    kind          armed when                          on expiry
    first-head    the connection is made              close: no request (IdleTimeoutError)
    keep-alive    an answer ends, nothing pending     close quietly (draining: after
                  (draining: at once, if idle)        DRAIN_IDLE_SECONDS at most)
    body          a head with a body arrives; reset   close: the body stalled
                  by each piece of it                 (FrameTimeoutError)
    answer        a handler returns None              500 and close, logged
    (None)        a head arrives, a body ends ...     nothing: a firing is ignored

A head begun but unfinished has its own deadline, the framing layer's
partial-frame timer set to ``header_timeout`` (``framed.py``): it does not
move however slowly the head drips, which is what stops slowloris.

This is a mixin of ``HTTPServerProtocol`` (``server.py``), whose state it reads.
"""

import logging
from typing import Any, Optional

from ..errors import FrameTimeoutError, IdleTimeoutError
from .messages import Response

logger = logging.getLogger("reactor")

#: While the server drains, an idle keep-alive connection is closed after this much quiet.
#: Not at once: a client like wrk sends its next request the moment an answer arrives,
#: and a close crossing that request loses it; a client quiet this long is the ordinary
#: keep-alive race, which clients retry. A request that does come gets ``Connection: close``.
DRAIN_IDLE_SECONDS = 1.0


class Deadlines:
    """The timer half of ``HTTPServerProtocol``; see the module docstring."""

    transport: Any
    options: Any
    framer: Any
    client: Any
    _request: Any
    _busy: bool
    _producer: Any
    _logged: Any
    _deferred: Any
    _keep_alive: bool
    _body_ended: bool
    _answer: Any
    _timer: Any = None
    _timer_kind: Optional[str] = None
    _draining = False            # the server is shutting down: no more keep-alive

    def _arm(self, kind: str, delay: Optional[float]) -> None:
        """Set the connection's one timer to ``kind`` in ``delay`` seconds (None: no limit).

        One timer per connection, moved with ``reset`` (O(1) on the wheel)
        rather than cancelled and made anew for every request; a kind of
        None makes a pending firing do nothing.
        """
        if delay is None:
            self._timer_kind = None
            return
        self._timer_kind = kind
        if self._timer is None:
            self._timer = self.transport.loop.call_later(delay, self._timer_fired)
        else:
            self._timer.reset(delay)

    def _idle_if_done(self) -> None:
        if self._request is None and not self._busy and not self.framer.buffered:
            delay = self.options.keepalive_timeout
            if self._draining:
                delay = DRAIN_IDLE_SECONDS if delay is None else min(delay, DRAIN_IDLE_SECONDS)
            self._arm("keep-alive", delay)

    def _timer_fired(self) -> None:
        kind, transport = self._timer_kind, self.transport
        self._timer_kind = None
        if kind == "first-head" and not self.framer.buffered and self._request is None:
            transport.close_with_error(IdleTimeoutError(
                "no request within %.3g s of connecting" % self.options.header_timeout),
                flush=False)
        elif kind == "keep-alive" and not self.framer.buffered and self._request is None:
            logger.debug("closing idle keep-alive connection %s", self.client)
            transport.close()
        elif kind == "body" and self._request is not None and not self._body_ended:
            transport.close_with_error(FrameTimeoutError(
                "request body stalled: no bytes for %.3g s" % self.options.body_timeout),
                flush=False)
        elif kind == "answer" and self._busy and self._producer is None and self._logged is None:
            request = self._deferred
            logger.error("handler for %s %s did not answer within %.3g s (answer_timeout); "
                         "answering 500 and closing", request.method, request.target[:200],
                         self.options.answer_timeout)
            self._keep_alive = False
            self._answer(request, Response(500, body="500 Internal Server Error\n"))

"""A hierarchical timing wheel: O(1) schedule, cancel and reset.

A server carries a timer per connection (idle timeout, request timeout) and
resets it on every message. A heap pays O(log n) for each of those and keeps
cancelled entries until they surface. A timing wheel (Varghese & Lauck, 1987)
hashes each timer into a slot by its deadline instead, so every operation is a
dict insert or delete.

Time is counted in integer *ticks* (1 ms by default). The wheel has four
levels of 256 slots; a slot at level ``k`` spans ``256**k`` ticks::

    level  slot width   level span (1 ms tick)
    0      1 tick       256 ms        timers due within 256 ticks
    1      256          65.5 s
    2      65,536       4.66 h
    3      16,777,216   49.7 days
    overflow            beyond        re-examined every 4.66 h

Worked example (in the spirit of Kafka's ``TimingWheel``): the wheel's
position is tick 1000 and a timer is due at tick 1700. It is 700 ticks away,
too far for level 0, so it goes to level 1, slot ``(1700 >> 8) & 255 = 6``,
which covers ticks 1536-1791. When the position reaches tick 1536 the wheel
*cascades* that slot: every timer in it is re-inserted relative to the new
position; ours is now 164 ticks away and lands in level 0, slot
``1700 & 255 = 164``, and fires when the position reaches 1700. Each timer
cascades at most once per level, so its total cost stays O(levels).
(The insertion and cascade rules are those of Linux's classic
``kernel/timer.c``, ``internal_add_timer`` and ``cascade``.)

Finding work without walking every tick: each level keeps a bitmap (a Python
int) of its non-empty slots. The next event (a level-0 slot to fire, or a
higher slot to cascade) is found with a rotate and a lowest-set-bit per level,
so a loop that slept for ten minutes catches up in a few steps, and
``next_deadline`` is O(levels), not O(slots).

Guarantees:

* never early: a deadline is rounded *up* to a tick, ``now`` is rounded down;
* at most one tick late when the loop is idle: ``next_deadline()`` never lies
  later than the earliest timer's tick (it may name an earlier cascade point,
  which costs one spurious wake-up and runs nothing);
* same-deadline timers fire in scheduling order: a due slot is sorted by
  (deadline, sequence) before firing, O(k log k) for k timers due in one tick
  (O(k) when they already are in order, the common case);
* a reset that pushes a deadline later is O(1) with no slot move; the
  timer moves when its old slot comes up (see ``reschedule``);
* cancelled timers leave their slot at once and drop their callback; a slot
  emptied by cancels is replaced by a fresh dict, so a burst of a million
  cancelled timers gives its memory back.

Discussion: why not the Linux 4.8 wheel that never cascades? It rounds long
timeouts to coarse slots (up to 12.5% late), which is fine for a kernel but
breaks the "one tick late" promise a teaching library wants to make and test.
Cascading costs at most one re-insert per level per timer.
"""

import itertools
import math
from operator import attrgetter
from typing import Any, Callable, Dict, List, Optional, Tuple

from .timers import Timer, _no_clock

SLOT_BITS = 8
SLOTS = 1 << SLOT_BITS
SLOT_MASK = SLOTS - 1
LEVELS = 4
ALL_SLOTS = (1 << SLOTS) - 1
#: Timers at least this many ticks away wait in the overflow.
WHEEL_SPAN_TICKS = 1 << (SLOT_BITS * LEVELS)
#: The overflow is re-examined whenever the position crosses a multiple of this.
OVERFLOW_CHECK_TICKS = 1 << (SLOT_BITS * (LEVELS - 1))

_OVERFLOW = -1
_fire_order = attrgetter("_when", "_seq")
_ceil = math.ceil


class TimerWheel:
    """Four levels of 256 slots plus an overflow; see the module docstring.

    ``tick_seconds`` is the granularity: the promise "at most one tick late"
    is in these units. ``now`` is the loop's time at creation; the wheel
    starts its position there.
    """

    def __init__(self, tick_seconds: float = 0.001, now: float = 0.0) -> None:
        if not 0.0 < tick_seconds < math.inf:
            raise ValueError("tick_seconds must be a positive finite number, got %r"
                             % (tick_seconds,))
        self.tick_seconds = tick_seconds
        # One flat list: slot s of level k is _slots[k * SLOTS + s]. A slot is
        # a dict used as an insertion-ordered set: O(1) add and remove.
        self._slots: List[Dict[Timer, None]] = [{} for _ in range(LEVELS * SLOTS)]
        self._occupied = [0] * LEVELS          # bit s set <=> slot s non-empty
        self._overflow: Dict[Timer, None] = {}
        self._next_tick = self._floor_tick(now)  # the first tick not yet expired
        self._count = 0
        self._next_seq = itertools.count().__next__
        #: The loop's clock, set by the loop; used only by ``Timer.reset``.
        self.clock: Callable[[], float] = _no_clock

    def __len__(self) -> int:
        return self._count

    # -- the backend interface (see reactor.timers) ------------------------

    def schedule(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...]) -> Timer:
        """Add a timer firing at ``when``; O(1)."""
        # Hot path: every call_later. The deadline is rounded *up* to a tick,
        # and corrected when float division rounded down, so that
        # tick * tick_seconds >= when holds exactly: never early.
        timer = Timer(when, callback, args, self, self._next_seq())
        tick_seconds = self.tick_seconds
        tick = _ceil(when / tick_seconds)
        if tick * tick_seconds < when:
            tick += 1
        timer._tick = tick
        self._count += 1
        self._insert(timer, tick)
        return timer

    def cancel(self, timer: Timer) -> None:
        """Unschedule ``timer`` and drop its callback; O(1)."""
        pos = timer._pos
        if pos is not None:
            timer._pos = None
            self._count -= 1
            if pos == _OVERFLOW:
                del self._overflow[timer]
            else:
                slot = self._slots[pos]
                del slot[timer]
                if not slot:                    # give a big emptied table back
                    self._slots[pos] = {}
                    self._occupied[pos >> SLOT_BITS] &= ~(1 << (pos & SLOT_MASK))
        timer._callback = None
        timer._args = None

    def reschedule(self, timer: Timer, when: float) -> None:
        """Move ``timer`` to ``when`` (a fired timer is armed again); O(1).

        Discussion: a deadline pushed *later* (the idle-timeout reset, once
        per message) is recorded on the timer and the timer stays in its
        slot. That slot is processed no later than the old deadline, and
        processing re-inserts the timer by its new tick instead of firing
        it. So a reset is a few attribute writes, and the slot move, if one
        is still needed, happens at most once per old deadline rather than
        once per message. A deadline pulled *earlier* moves at once, since
        the old slot could be processed too late.
        """
        tick_seconds = self.tick_seconds
        tick = _ceil(when / tick_seconds)
        if tick * tick_seconds < when:
            tick += 1
        timer._when = when
        timer._seq = self._next_seq()
        if timer._pos is not None and tick >= timer._tick:
            timer._tick = tick              # lazy: stays put, re-inserted when its slot comes up
            return
        if timer._pos is not None:
            self._remove(timer)
        else:
            self._count += 1
        timer._tick = tick
        self._insert(timer, tick)

    def next_deadline(self) -> Optional[float]:
        """Return a time no later than the earliest deadline's tick, or None if empty."""
        if not self._count:
            return None
        return self._next_event_tick() * self.tick_seconds

    def expire(self, now: float, ready: Any) -> None:
        """Advance the position to ``now``, appending due timers to ``ready`` in order."""
        # Hot path: runs once per loop pass. With nothing due it costs one
        # _next_event_tick() call; it jumps over empty stretches rather than
        # stepping tick by tick.
        target = self._floor_tick(now)
        if target < self._next_tick:
            return
        slots = self._slots
        while self._count:
            tick = self._next_event_tick()
            if tick > target:
                break
            self._next_tick = tick
            index = tick & SLOT_MASK
            if index == 0:
                self._cascade(tick)
            slot = slots[index]
            if slot:
                slots[index] = {}
                self._occupied[0] &= ~(1 << index)
                due = []
                for timer in slot:
                    if timer._tick > tick:      # reset to a later deadline: not due yet
                        self._insert(timer, timer._tick)
                    else:
                        timer._pos = None
                        due.append(timer)
                self._count -= len(due)
                if len(due) > 1:
                    due.sort(key=_fire_order)
                ready.extend(due)
            self._next_tick = tick + 1
        if target >= self._next_tick:
            self._next_tick = target + 1

    # -- internals -----------------------------------------------------------

    def _floor_tick(self, now: float) -> int:
        """Round a time down to a tick, so that tick * tick_seconds <= now, exactly."""
        tick = math.floor(now / self.tick_seconds)
        if tick * self.tick_seconds > now:      # float division rounded up
            tick -= 1
        return tick

    def _insert(self, timer: Timer, tick: int) -> None:
        """Put ``timer`` in the slot for ``tick`` relative to the current position."""
        # Hot path: every schedule and reset. Branches, no loops.
        distance = tick - self._next_tick
        if distance < SLOTS:
            if distance < 0:                    # already due: fire at the next expire
                tick = self._next_tick
            pos = tick & SLOT_MASK
        elif distance < 1 << 16:
            pos = SLOTS + ((tick >> 8) & SLOT_MASK)
        elif distance < 1 << 24:
            pos = 2 * SLOTS + ((tick >> 16) & SLOT_MASK)
        elif distance < WHEEL_SPAN_TICKS:
            pos = 3 * SLOTS + ((tick >> 24) & SLOT_MASK)
        else:
            self._overflow[timer] = None
            timer._pos = _OVERFLOW
            return
        slot = self._slots[pos]
        if not slot:
            self._occupied[pos >> SLOT_BITS] |= 1 << (pos & SLOT_MASK)
        slot[timer] = None
        timer._pos = pos

    def _remove(self, timer: Timer) -> None:
        """Take ``timer`` out of its slot; a slot left empty is replaced to free its table."""
        pos = timer._pos
        timer._pos = None
        if pos == _OVERFLOW:
            del self._overflow[timer]
            return
        slot = self._slots[pos]
        del slot[timer]
        if not slot:
            self._slots[pos] = {}
            self._occupied[pos >> SLOT_BITS] &= ~(1 << (pos & SLOT_MASK))

    def _cascade(self, tick: int) -> None:
        """At a level boundary, re-insert the higher-level slots whose turn it is."""
        for level in range(1, LEVELS):
            shift = SLOT_BITS * level
            if tick & ((1 << shift) - 1):
                break
            index = (tick >> shift) & SLOT_MASK
            pos = level * SLOTS + index
            slot = self._slots[pos]
            if slot:
                self._slots[pos] = {}
                self._occupied[level] &= ~(1 << index)
                for timer in slot:
                    self._insert(timer, timer._tick)
        if tick % OVERFLOW_CHECK_TICKS == 0 and self._overflow:
            near = [t for t in self._overflow if t._tick - tick < WHEEL_SPAN_TICKS]
            for timer in near:
                del self._overflow[timer]
                self._insert(timer, timer._tick)

    def _next_event_tick(self) -> int:
        """Return the first tick >= the position where a slot fires or cascades.

        Per level: rotate the occupancy bitmap so the current position is bit
        0, then take the lowest set bit. Only call with at least one timer.
        """
        position = self._next_tick
        best = WHEEL_SPAN_TICKS + position
        occupied = self._occupied
        bitmap = occupied[0]
        if bitmap:
            start = position & SLOT_MASK
            rotated = ((bitmap >> start) | (bitmap << (SLOTS - start))) & ALL_SLOTS
            best = position + (rotated & -rotated).bit_length() - 1
        for level in range(1, LEVELS):
            bitmap = occupied[level]
            if bitmap:
                shift = SLOT_BITS * level
                block = (position + (1 << shift) - 1) >> shift   # first boundary >= position
                start = block & SLOT_MASK
                rotated = ((bitmap >> start) | (bitmap << (SLOTS - start))) & ALL_SLOTS
                tick = (block + (rotated & -rotated).bit_length() - 1) << shift
                if tick < best:
                    best = tick
        if self._overflow:
            tick = -(-position // OVERFLOW_CHECK_TICKS) * OVERFLOW_CHECK_TICKS
            if tick < best:
                best = tick
        return best

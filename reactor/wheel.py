"""A hierarchical timing wheel: O(1) schedule, cancel and reset.

A server carries a timer per connection (idle timeout, request timeout) and
resets it on every message. A heap pays O(log n) for each of those and keeps
cancelled entries until they surface. A timing wheel (Varghese & Lauck, 1987)
hashes each timer into a slot by its deadline instead, so every operation is a
list append or a few counter updates.

Time is counted in integer *ticks* (1 ms by default). The wheel's *position*
is the first tick not yet expired: ``expire(now)`` fires the slots up to the
tick that holds ``now`` and moves the position to the tick after it. The
wheel has four levels of 256 slots; a slot at level ``k`` spans ``256**k``
ticks::

    level  slot width   level span (1 ms tick)
    0      1 tick       256 ms        timers due within 256 ticks
    1      256          65.5 s
    2      65,536       4.66 h
    3      16,777,216   49.7 days
    overflow            beyond        re-examined every 4.66 h
    due                 at or before the position: checked by exact deadline

Worked example (in the spirit of Kafka's ``TimingWheel``; each step is
checked by ``tests/test_wheel_examples.py``): the wheel's position is tick
1000 and a timer is due at tick 1700. It is 700 ticks away, too far for
level 0, so it goes to level 1, slot ``(1700 >> 8) & 255 = 6``, which covers
ticks 1536-1791. When the position reaches tick 1536 the wheel *cascades*
that slot: every timer in it is re-inserted relative to the new position;
ours is now 164 ticks away and lands in level 0, slot ``1700 & 255 = 164``,
and fires when the position reaches 1700. Each timer cascades at most once
per level, so its total cost stays O(levels). (The insertion and cascade
rules are those of Linux's classic ``kernel/timer.c``, ``internal_add_timer``
and ``cascade``.)

Finding work without walking every tick: each level keeps a bitmap (a Python
int) of its non-empty slots. The next event (a level-0 slot to fire, or a
higher slot to cascade) is found with a rotate and a lowest-set-bit per level
(see ``_next_event_tick``), so a loop that slept for ten minutes catches up in
a few steps, and ``next_deadline`` is O(levels), not O(slots).

Timers due now or in the past (``call_later(0)``, a deadline already
passed, or one later in the tick under way) have their tick at or before the
position, so no slot ahead of it can hold them. They wait in a small *due*
collection that ``expire`` checks by exact deadline, so they fire on the
next loop pass whether the clock moved or not, as on the heap. (The slot of
the position's tick would fire them only at the tick's end, and never under
a frozen ``FakeClock``.) ``expire`` tests the collection with one comparison,
against its earliest deadline; a timer due later in the tick under way waits
there, re-examined whenever another due timer fires, for at most one tick.

Guarantees:

* never early: a deadline is rounded *up* to a tick, ``now`` is rounded down,
  and the due collection compares exact deadlines;
* a timer scheduled or reset to a deadline at or before ``now`` fires at the
  next ``expire``, even at the same ``now`` (the due collection);
* at most one tick late when the loop is idle: ``next_deadline()`` never lies
  later than the earliest timer's tick (it may name an earlier cascade point,
  or a due deadline a cancel made stale: one spurious wake-up, nothing run);
* same-deadline timers fire in scheduling order: the timers fired by one
  ``expire`` are sorted by (deadline, sequence), O(k log k) for k timers
  (O(k) when they already are in order, the common case);
* a reset that pushes a deadline later is O(1) with no slot move; the
  timer moves when its old slot comes up (see ``reschedule``);
* a cancelled timer drops its callback at once and leaves a *stale* entry
  in its slot's list; a slot left without live timers gets a fresh list at
  once, and stale entries elsewhere go at the next ``expire`` once they
  outnumber live timers: a burst of a million cancels gives its memory back.

Discussion: slots were dicts (O(1) delete), but a dict insert into a big
table misses the cache: lists with stale entries made schedule + cancel of
1M timers 1.3x faster (``docs/BENCHMARKS.md``). The Linux 4.8 wheel never
cascades, but rounds long timeouts up to 12.5% late, breaking the "one tick
late" promise; cascading costs at most one re-insert per level per timer.

Like the heap, the wheel is handed ``now``; the one clock it holds is the
loop's, lent for ``Timer.reset`` and ``Periodic`` (see ``reactor.timers``).
"""

import itertools
import math
from operator import attrgetter
from typing import Any, Callable, Dict, List, Optional, Tuple

from .timers import Timer, no_clock

SLOT_BITS = 8
SLOTS = 1 << SLOT_BITS                   # slots per level
SLOT_MASK = SLOTS - 1
LEVELS = 4
ALL_SLOTS = (1 << SLOTS) - 1             # a level's occupancy bitmap with every bit set
#: A level-k slot is 1 << (k * SLOT_BITS) ticks wide: a tick's slot there is
#: (tick >> (k * SLOT_BITS)) & SLOT_MASK. Named per level for ``_insert``.
LEVEL1_SHIFT = SLOT_BITS
LEVEL2_SHIFT = 2 * SLOT_BITS
LEVEL3_SHIFT = 3 * SLOT_BITS
#: Level k holds the timers less than 256 of its slots away (level 0: SLOTS ticks).
LEVEL1_REACH_TICKS = 1 << LEVEL2_SHIFT
LEVEL2_REACH_TICKS = 1 << LEVEL3_SHIFT
#: Level 3's reach: timers at least this many ticks away wait in the overflow.
WHEEL_SPAN_TICKS = 1 << (SLOT_BITS * LEVELS)
#: The overflow is re-examined at each multiple of this (a level-3 slot's width).
OVERFLOW_CHECK_TICKS = 1 << LEVEL3_SHIFT
#: Stale slot entries are dropped once they outnumber live timers, but never
#: for fewer than this (as HeapTimers compacts its heap).
COMPACT_MIN_STALE = 1024

# Timer._pos markers for the two places that are not slots (slots are >= 0).
_OVERFLOW = -1
_DUE = -2
_INF = math.inf
_fire_order = attrgetter("_when", "_seq")
_ceil = math.ceil
_floor = math.floor


class TimerWheel:
    """Four levels of 256 slots, an overflow and a due collection; see the module docstring.

    ``tick_seconds`` is the granularity: the promise "at most one tick late"
    is in these units. ``now`` is the loop's time at creation; the wheel
    starts as if it had just expired ``now``, with its position at the tick
    after it.
    """

    def __init__(self, tick_seconds: float = 0.001, now: float = 0.0) -> None:
        if not 0.0 < tick_seconds < math.inf:
            raise ValueError("tick_seconds must be a positive finite number, got %r"
                             % (tick_seconds,))
        self.tick_seconds = tick_seconds
        # One flat list: slot s of level k is _slots[k * SLOTS + s], a list. A
        # timer that leaves early (cancel, move) stays as a *stale* entry, its
        # _pos no longer naming the slot. _live counts each slot's live timers.
        self._slots: List[List[Timer]] = [[] for _ in range(LEVELS * SLOTS)]
        self._live = [0] * (LEVELS * SLOTS)
        self._occupied = [0] * LEVELS          # bit s set <=> slot s has live timers
        self._stale = 0                        # stale entries in all slots
        self._overflow: Dict[Timer, None] = {}
        # Timers whose tick is at or before the position, fired by exact
        # deadline. _due_earliest is no later than the earliest deadline in
        # it (a cancel may leave it early), and infinite when it is empty.
        self._due: Dict[Timer, None] = {}
        self._due_earliest = _INF
        self._position = self._floor_tick(now) + 1   # the first tick not yet expired
        self._count = 0
        self._next_seq = itertools.count().__next__
        #: The loop's own clock function, lent by the loop for ``Timer.reset``
        #: and ``Periodic``; the wheel itself never calls it.
        self.clock: Callable[[], float] = no_clock

    def __len__(self) -> int:
        return self._count

    # -- the backend interface (see reactor.timers) ------------------------

    def schedule(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...]) -> Timer:
        """Add a timer firing at ``when``; O(1)."""
        # Hot path: every call_later. No loops, one allocation (the Timer).
        # The deadline is rounded *up* to a tick (never early), corrected
        # when float division rounded down, so tick * tick_seconds >= when
        # exactly. Written out here and in reschedule rather than called
        # (the twin of _floor_tick): a call costs ~25 ns, 5% of a schedule.
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
        # Hot path: the common case (a slot that keeps other live timers) is
        # _remove's first branch written out, for the same 25 ns as in schedule.
        pos = timer._pos
        if pos is not None:
            self._count -= 1
            live = self._live
            if pos >= 0 and live[pos] > 1:
                timer._pos = None
                live[pos] -= 1
                self._stale += 1
            else:
                self._remove(timer)
        timer._callback = None
        timer._args = None

    def reschedule(self, timer: Timer, when: float) -> None:
        """Move ``timer`` to ``when`` (a fired timer is armed again); O(1).

        Discussion: a deadline pushed *later* (the idle-timeout reset, once
        per message) is recorded on the timer, which stays in its slot: the
        slot comes up no later than the old deadline and re-inserts the
        timer by its new tick instead of firing it. So a reset is a few
        attribute writes. The timer moves at once when its deadline is
        pulled *earlier* (its slot could come up too late) or when its old
        tick is not ahead of the position (the due collection, which must
        stay small, or the slot of the tick under way, already too late).
        """
        # Hot path: once per received message in an idle-timeout server.
        tick_seconds = self.tick_seconds
        tick = _ceil(when / tick_seconds)       # rounded up, as in schedule
        if tick * tick_seconds < when:
            tick += 1
        timer._when = when
        timer._seq = self._next_seq()
        if timer._pos is not None and tick >= timer._tick > self._position:
            timer._tick = tick                  # lazy: re-inserted when its slot comes up
            return
        if timer._pos is None:
            self._count += 1                    # fired: armed again
        else:
            self._remove(timer)
        timer._tick = tick
        self._insert(timer, tick)

    def next_deadline(self) -> Optional[float]:
        """Return a time no later than the earliest deadline's tick, or None if empty."""
        if not self._count:
            return None
        deadline = self._next_event_tick() * self.tick_seconds
        if self._due_earliest < deadline:
            return self._due_earliest
        return deadline

    def expire(self, now: float, ready: Any) -> None:
        """Append every timer due by ``now`` to ``ready``, in (deadline, seq) order.

        Slots fire as the position passes their tick; the due collection
        fires the timers whose exact deadline is at or before ``now``. The
        position ends at the tick after ``now``.
        """
        # Hot path: runs once per loop pass. With nothing due it costs a
        # _floor_tick and two comparisons; _advance jumps over empty
        # stretches rather than stepping tick by tick.
        if self._stale > self._count and self._stale > COMPACT_MIN_STALE:
            self._compact()
        target = self._floor_tick(now)
        if now >= self._due_earliest:
            self._expire_with_due(now, target, ready)
        elif target >= self._position:
            self._advance(target, ready)

    # -- internals -----------------------------------------------------------

    def _floor_tick(self, now: float) -> int:
        """Round a time down to a tick, so that tick * tick_seconds <= now, exactly.

        (Its twin, rounding a deadline *up*, is written out in ``schedule``
        and ``reschedule``, the hot paths.)
        """
        tick_seconds = self.tick_seconds
        tick = _floor(now / tick_seconds)
        if tick * tick_seconds > now:           # float division rounded up
            tick -= 1
        return tick

    def _insert(self, timer: Timer, tick: int) -> None:
        """File ``timer`` by ``tick``: a slot ahead of the position, or the due collection."""
        # Hot path: every schedule and reset. Branches, no loops.
        distance = tick - self._position
        if distance < SLOTS:
            if distance <= 0:                   # its tick has begun: fire by exact deadline
                self._due[timer] = None
                timer._pos = _DUE
                if timer._when < self._due_earliest:
                    self._due_earliest = timer._when
                return
            pos = tick & SLOT_MASK
        elif distance < LEVEL1_REACH_TICKS:
            pos = SLOTS + ((tick >> LEVEL1_SHIFT) & SLOT_MASK)
        elif distance < LEVEL2_REACH_TICKS:
            pos = 2 * SLOTS + ((tick >> LEVEL2_SHIFT) & SLOT_MASK)
        elif distance < WHEEL_SPAN_TICKS:
            pos = 3 * SLOTS + ((tick >> LEVEL3_SHIFT) & SLOT_MASK)
        else:
            self._overflow[timer] = None
            timer._pos = _OVERFLOW
            return
        self._slots[pos].append(timer)
        timer._pos = pos
        live = self._live
        if not live[pos]:
            self._occupied[pos >> SLOT_BITS] |= 1 << (pos & SLOT_MASK)
        live[pos] += 1

    def _remove(self, timer: Timer) -> None:
        """Take ``timer`` out of its slot, the overflow or the due collection.

        In a slot, its entry turns stale. A slot left without live timers is
        replaced by a fresh list, giving its stale entries back at once.
        """
        pos = timer._pos
        timer._pos = None
        if pos >= 0:
            live = self._live
            live[pos] -= 1
            if live[pos]:
                self._stale += 1
            else:
                self._stale -= len(self._slots[pos]) - 1
                self._slots[pos] = []
                self._occupied[pos >> SLOT_BITS] &= ~(1 << (pos & SLOT_MASK))
        elif pos == _OVERFLOW:
            del self._overflow[timer]
        else:
            del self._due[timer]
            if not self._due:
                self._due = {}
                self._due_earliest = _INF

    def _expire_with_due(self, now: float, target: int, ready: Any) -> None:
        """Fire the due timers with deadline <= ``now`` together with the slots', in order."""
        fired = []
        waiting: Dict[Timer, None] = {}         # later in the tick under way
        for timer in self._due:
            if timer._when <= now:
                timer._pos = None
                fired.append(timer)
            else:
                waiting[timer] = None
        self._due = waiting
        self._due_earliest = min([timer._when for timer in waiting], default=_INF)
        self._count -= len(fired)
        fired.sort(key=_fire_order)
        if target >= self._position:
            ours = len(fired)
            self._advance(target, fired)        # appends the slots' timers, in order
            # Only the slot of the tick under way can hold deadlines earlier
            # than ours (later ticks' are later than any due timer's): if it
            # did, merge the two sorted runs, which Timsort does in O(k).
            if 0 < ours < len(fired) and _fire_order(fired[ours]) < _fire_order(fired[ours - 1]):
                fired.sort(key=_fire_order)
        ready.extend(fired)

    def _advance(self, target: int, ready: Any) -> None:
        """Move the position to ``target + 1``, firing and cascading slots on the way."""
        slots = self._slots
        while self._count:
            tick = self._next_event_tick()
            if tick > target:
                break
            self._position = tick
            index = tick & SLOT_MASK
            if index == 0:
                self._cascade(tick)
            slot = slots[index]
            if slot:
                slots[index] = []
                self._live[index] = 0
                self._occupied[0] &= ~(1 << index)
                fired = []
                for timer in slot:
                    if timer._pos != index:     # stale: cancelled or moved (or met twice)
                        self._stale -= 1
                    elif timer._tick > tick:    # reset to a later deadline: not due yet
                        self._insert(timer, timer._tick)
                    else:
                        timer._pos = None
                        fired.append(timer)
                self._count -= len(fired)
                if len(fired) > 1:
                    fired.sort(key=_fire_order)
                ready.extend(fired)
            self._position = tick + 1
        self._position = target + 1

    def _cascade(self, tick: int) -> None:
        """At a level boundary, re-insert the higher-level slots whose turn it is.

        Runs with the position at ``tick`` (a multiple of 256), just before
        its level-0 slot, 0, fires. A timer due at ``tick`` itself goes
        straight there: ``_insert`` would send it to the due collection,
        which this ``expire`` has already checked.
        """
        for level in range(1, LEVELS):
            shift = SLOT_BITS * level
            if tick & ((1 << shift) - 1):
                break
            index = (tick >> shift) & SLOT_MASK
            pos = level * SLOTS + index
            slot = self._slots[pos]
            if slot:
                self._slots[pos] = []
                self._live[pos] = 0
                self._occupied[level] &= ~(1 << index)
                for timer in slot:
                    if timer._pos != pos:
                        self._stale -= 1
                    elif timer._tick > tick:
                        self._insert(timer, timer._tick)
                    else:
                        self._slots[0].append(timer)
                        self._live[0] += 1
                        self._occupied[0] |= 1
                        timer._pos = 0
        if tick % OVERFLOW_CHECK_TICKS == 0 and self._overflow:
            near = [t for t in self._overflow if t._tick - tick < WHEEL_SPAN_TICKS]
            for timer in near:
                del self._overflow[timer]
                self._insert(timer, timer._tick)

    def _compact(self) -> None:
        """Drop every stale entry: once they outnumber the live timers, O(n) amortized."""
        slots = self._slots
        for pos, slot in enumerate(slots):
            if len(slot) > self._live[pos]:
                slots[pos] = list(dict.fromkeys([t for t in slot if t._pos == pos]))
        self._stale = 0

    def _next_event_tick(self) -> int:
        """Return the first tick >= the position where a slot fires or cascades.

        Level 0: rotate the occupancy bitmap right by the position's slot
        index, so that bit d stands for the slot d ticks ahead; the lowest
        set bit is the nearest occupied slot. Level k >= 1: a slot there
        cascades at the *start* of the block of 256**k ticks it covers, so
        round the position up to a block boundary, rotate by that block's
        slot index, and the lowest set bit counts whole blocks ahead. The
        overflow adds its next check point. The answer is the smallest
        candidate (a wheel span away if there is none), in O(levels).

        Worked example (checked by ``tests/test_wheel_examples.py``): the
        position is 1000 = 3 * 256 + 232, so its level-0 slot is 232.

        * Level 0 has bits 5 and 240 set. Rotating right by 232 moves bit
          240 to bit 8, and wraps bit 5 round to bit 5 + 256 - 232 = 29.
          The lowest set bit is 8: slot 240 fires at tick 1000 + 8 = 1008
          (slot 5 would fire at 1029).
        * Level 1 has bit 6 set (ticks 1536-1791). The first block boundary
          at or after 1000 is block 4 (tick 1024); rotating right by 4
          moves bit 6 to bit 2, so the slot cascades at block 4 + 2 = 6,
          tick 6 * 256 = 1536.
        * The answer is 1008. Cancel the two level-0 timers and it is 1536.
        """
        position = self._position
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

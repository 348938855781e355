"""Timer backends: the wheel and the heap against a sorted-list reference."""

import bisect
import gc
import logging
import math
import random
import tracemalloc

import pytest

import reactor
from reactor import FakeClock, Reactor
from reactor.timers import HeapTimers, TimerCancelledError
from reactor.wheel import TimerWheel

TICK = 0.001
BACKENDS = {
    "wheel": lambda: TimerWheel(TICK, 0.0),
    "heap": HeapTimers,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    timers = BACKENDS[request.param]()
    timers.now = 0.0
    timers.clock = lambda: timers.now
    return timers


def expire(timers, now):
    timers.now = now
    ready = []
    timers.expire(now, ready)
    for timer in ready:
        timer._callback(*timer._args)
    return ready


def test_fires_in_deadline_then_scheduling_order(backend):
    """Timers fire by deadline, and same-deadline timers in the order they were scheduled."""
    fired = []
    for name, when in [("c", 0.5), ("a", 0.2), ("b", 0.2), ("d", 0.2), ("e", 0.0)]:
        backend.schedule(when, fired.append, (name,))
    expire(backend, 1.0)
    assert fired == ["e", "a", "b", "d", "c"]


def test_never_fires_early(backend):
    """A timer due at t does not fire at any time before t."""
    fired = []
    backend.schedule(0.0105, fired.append, ("x",))
    for now in (0.0, 0.01, 0.0104, 0.01049):
        expire(backend, now)
        assert fired == []
    expire(backend, 0.0105 + TICK)
    assert fired == ["x"]


def test_deadlines_at_or_before_now_fire_at_the_next_expire_with_the_clock_frozen(backend):
    """A timer due now or in the past fires at the very next expire, at the same now, in order."""
    fired = []
    expire(backend, 1.0)
    backend.schedule(1.0, fired.append, ("now",))
    backend.schedule(0.5, fired.append, ("past",))
    backend.schedule(0.999, fired.append, ("just past",))
    assert backend.next_deadline() <= 1.0
    expire(backend, 1.0)
    assert fired == ["past", "just past", "now"]
    assert len(backend) == 0 and backend.next_deadline() is None


def test_a_deadline_inside_the_tick_under_way_fires_once_now_reaches_it(backend):
    """Mid-tick, a zero delay fires at the next expire; one 0.3 ms later fires at its deadline."""
    fired = []
    expire(backend, 1.0003)
    backend.schedule(1.0003, fired.append, ("zero delay",))
    backend.schedule(1.0006, fired.append, ("later this tick",))
    expire(backend, 1.0003)
    assert fired == ["zero delay"]
    assert backend.next_deadline() == 1.0006
    expire(backend, 1.00059)
    assert fired == ["zero delay"]
    expire(backend, 1.0006)
    assert fired == ["zero delay", "later this tick"]


def test_reset_to_now_fires_at_the_next_expire_with_the_clock_frozen(backend):
    """reset(0) on a pending or a fired timer makes it fire at the next expire, clock unmoved."""
    fired = []
    expire(backend, 0.9995)
    pending = backend.schedule(1.0008, fired.append, ("pending",))   # the next tick's slot
    done = backend.schedule(1.0, fired.append, ("done",))
    expire(backend, 1.0004)                 # the tick under way is now pending's
    assert fired == ["done"]
    pending.reset(0)
    done.reset(0)
    expire(backend, 1.0004)
    assert fired == ["done", "pending", "done"]


def test_cancel_drops_callback_at_once(backend):
    """cancel() unschedules the timer and releases its callback and arguments immediately."""
    payload = [object()]
    timer = backend.schedule(5.0, payload.append, (payload,))
    timer.cancel()
    assert timer.cancelled() and timer._callback is None and timer._args is None
    assert len(backend) == 0
    timer.cancel()
    assert expire(backend, 10.0) == []


def test_reset_moves_deadline_in_place(backend):
    """reset(delay) re-arms the same handle at now + delay; it fires once, at the new time."""
    fired = []
    timer = backend.schedule(1.0, fired.append, ("idle",))
    backend.now = 0.9
    timer.reset(1.0)
    assert timer.when() == pytest.approx(1.9)
    expire(backend, 1.5)
    assert fired == []
    expire(backend, 1.9 + TICK)
    assert fired == ["idle"]
    timer.reset(0.5)                     # a fired timer is armed again
    expire(backend, 2.5)
    assert fired == ["idle", "idle"]
    timer.cancel()
    with pytest.raises(TimerCancelledError):
        timer.reset(1.0)


def test_reset_rejects_bad_delays(backend):
    """reset() with a negative or NaN delay raises ValueError and leaves the timer as it was."""
    timer = backend.schedule(1.0, print, ())
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            timer.reset(bad)
    assert timer.when() == 1.0 and len(backend) == 1


def test_far_timers_cross_every_level_and_the_overflow():
    """Deadlines from 1 tick to 100 days away fire in order, each at most one tick late."""
    wheel = TimerWheel(TICK, 0.0)
    delays = [0.001, 0.3, 70.0, 5 * 3600.0, 20 * 86400.0, 60 * 86400.0, 100 * 86400.0]
    for delay in reversed(delays):
        wheel.schedule(delay, lambda: None, ())
    now, fired = 0.0, []
    while len(wheel):
        now = max(now, wheel.next_deadline())
        for timer in expire(wheel, now):
            fired.append(timer.when())
            assert 0.0 <= now - timer.when() <= TICK + 1e-9
    assert fired == delays


def test_cancelled_timers_give_memory_back():
    """Scheduling then cancelling 100,000 timers returns the wheel to its starting memory."""
    wheel = TimerWheel(TICK, 0.0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        timers = [wheel.schedule(1.0 + (i % 50) * 0.001, print, ()) for i in range(100_000)]
        for timer in timers:
            timer.cancel()
        del timers
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(wheel) == 0
    assert after - before < 64 * 1024, after - before


def test_stale_entries_are_dropped_at_the_next_expire_once_they_outnumber_live_timers():
    """Cancels in a slot that keeps live timers leave stale entries (O(1) cancel); once they
    outnumber the live timers (and pass COMPACT_MIN_STALE), the next expire drops them."""
    wheel = TimerWheel(TICK, 0.0)
    timers = [wheel.schedule(1.0, print, ()) for _ in range(5000)]   # one level-1 slot
    for timer in timers[1000:]:
        timer.cancel()
    entries = sum(len(slot) for slot in wheel._slots)
    assert (len(wheel), wheel._stale, entries) == (1000, 4000, 5000)
    assert expire(wheel, 0.5) == []
    assert wheel._stale == 0 and sum(len(slot) for slot in wheel._slots) == 1000
    assert expire(wheel, 1.0) == timers[:1000]


def test_a_timer_moved_within_its_slot_fires_once():
    """Pulled earlier within the same slot among other live timers, a timer is in that slot's
    list twice (its first entry is stale): it fires once, at its new deadline."""
    wheel = TimerWheel(TICK, 0.0)
    other = wheel.schedule(0.9, print, ())                 # keeps the level-1 slot live
    moved = wheel.schedule(1.0, print, ())
    moved._queue.reschedule(moved, 0.8)                    # ticks 768-1023: the same slot
    assert sum(slot.count(moved) for slot in wheel._slots) == 2
    assert expire(wheel, 1.1) == [moved, other]
    assert len(wheel) == 0 and wheel._stale == 0


def test_wheel_rejects_bad_tick():
    """A zero, negative or infinite tick is refused with a ValueError naming the value."""
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="tick_seconds"):
            TimerWheel(bad)


class SortedListModel:
    """The reference: live timers as a sorted list of (when, seq, id)."""

    def __init__(self):
        self.entries = []
        self.by_id = {}

    def add(self, key, when, seq):
        entry = (when, seq, key)
        bisect.insort(self.entries, entry)
        self.by_id[key] = entry

    def remove(self, key):
        entry = self.by_id.pop(key)
        del self.entries[bisect.bisect_left(self.entries, entry)]


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("seed", [1, 2])
def test_model_random_operations(name, seed):
    """60,000 random schedule/cancel/reset/advance ops per run match a sorted list (>=100k per backend).

    One deadline in ten is exactly now or already past: those must fire at
    the next expire on both backends, even when the clock has not moved.
    """
    rng = random.Random(seed)
    timers = BACKENDS[name]()
    timers.now = now = 0.0
    timers.clock = lambda: timers.now
    model = SortedListModel()
    handles = {}            # id -> timer, live or recently fired
    seq = 0
    fired_total = 0
    due_next = set()        # ids set to a deadline <= now: must fire at the next expire
    # (share, ticks from now): exactly now, already past, then every wheel level.
    distances = [(0.05, 0), (0.05, -300), (0.25, 4), (0.25, 256), (0.25, 65_536),
                 (0.10, 1 << 24), (0.05, 1 << 34)]

    def random_deadline():
        roll, acc = rng.random(), 0.0
        for share, ticks in distances:
            acc += share
            if roll < acc:
                return now + rng.uniform(0, ticks) * TICK
        return now

    def note_deadline(key, when):
        if when <= now:
            due_next.add(key)
        else:
            due_next.discard(key)

    for step in range(60_000):
        context = "seed=%d step=%d backend=%s" % (seed, step, name)
        op = rng.random()
        if op < 0.40 or not handles:
            when = random_deadline()
            timer = timers.schedule(when, lambda: None, ())
            handles[id(timer)] = timer
            model.add(id(timer), when, seq)
            note_deadline(id(timer), when)
            seq += 1
        elif op < 0.55:
            timer = handles.pop(rng.choice(list(handles)) if len(handles) < 64
                                else rng.choice(list(handles.keys())[-64:]))
            timer.cancel()
            due_next.discard(id(timer))
            if id(timer) in model.by_id:
                model.remove(id(timer))
        elif op < 0.70:
            key = rng.choice(list(handles)[-64:])
            timer = handles[key]
            when = random_deadline()
            if when < now:                         # reset() refuses a negative delay
                timers.reschedule(timer, when)
            else:
                timer.reset(when - now)
                when = now + (when - now)          # the deadline reset() computes
            if key in model.by_id:
                model.remove(key)
            model.add(key, when, seq)
            note_deadline(key, when)
            seq += 1
        else:
            roll = rng.random()
            idle = roll < 0.4
            if idle:                       # an idle loop sleeps until next_deadline()
                deadline = timers.next_deadline()
                target = now if deadline is None else max(now, deadline)
            elif roll < 0.9:
                target = now + rng.randrange(4) * TICK * rng.random()
            else:
                target = now + rng.uniform(0, 1 << 20) * TICK
            now = target
            fired = expire(timers, now)
            keys = [(t.when(), t._seq) for t in fired]
            assert keys == sorted(keys), context
            missed = due_next - {id(t) for t in fired}
            assert not missed, "a deadline <= now did not fire at the next expire: " + context
            for timer in fired:
                key = id(timer)
                assert key in model.by_id, "fired twice or after cancel: " + context
                assert timer.when() <= now, "fired early: " + context
                if idle and key not in due_next:
                    assert now - timer.when() <= TICK + 1e-9, "late when idle: " + context
                model.remove(key)
            due_next.clear()
            fired_total += len(fired)
            for when, _, key in model.entries[:5]:
                assert when > now - TICK - 1e-9, "overdue timer not fired: " + context
            deadline = timers.next_deadline()
            if model.entries:
                assert deadline is not None and deadline <= model.entries[0][0] + TICK + 1e-9, context
            else:
                assert deadline is None, context
            if len(handles) > 3000:
                for key in list(handles)[:1000]:
                    if key not in model.by_id:
                        del handles[key]
        assert len(timers) == len(model.entries), context
    now += (1 << 36) * TICK
    while model.entries:
        now = max(now, timers.next_deadline())
        for timer in expire(timers, now):
            model.remove(id(timer))
            fired_total += 1
    assert len(timers) == 0
    assert fired_total > 5_000


# -- the same promises through the loop, on both backends --------------------

LOOP_TIMERS = {"wheel": lambda: None, "heap": HeapTimers}   # None: the loop's default wheel


@pytest.fixture(params=sorted(LOOP_TIMERS))
def timer_loop(request):
    """A loop on a FakeClock at 1000.0 s, with the wheel or the heap; yields (loop, clock)."""
    clock = FakeClock(1000.0)
    loop = Reactor(clock=clock, timers=LOOP_TIMERS[request.param]())
    yield loop, clock
    loop.close()


def test_zero_delays_and_past_deadlines_run_on_the_first_pass(timer_loop):
    """call_later(0) and call_at(past) run on the very next run_once(), the clock unmoved."""
    loop, clock = timer_loop
    events = []
    loop.call_later(0, events.append, "zero")
    loop.call_at(loop.time() - 5, events.append, "past")
    loop.run_once()
    assert events == ["past", "zero"]


def test_reset_zero_runs_the_timer_on_the_next_pass(timer_loop):
    """timer.reset(0) on a fired timer or a far one runs it on the next pass, clock unmoved."""
    loop, clock = timer_loop
    events = []
    fired = loop.call_later(0, events.append, "fired")
    far = loop.call_later(60.0, events.append, "far")
    loop.run_once()
    assert events == ["fired"]
    fired.reset(0)
    far.reset(0)
    loop.run_once()
    assert events == ["fired", "fired", "far"]


def test_call_every_keeps_its_deadlines_when_calls_run_late(timer_loop):
    """Each deadline is the previous deadline + interval, however late the call before it ran."""
    loop, clock = timer_loop
    calls = []
    periodic = loop.call_every(0.25, lambda: calls.append((clock(), periodic.when())))
    loop.run_once()
    assert calls == [] and periodic.when() == 1000.25
    for late_by in (0.002, 0.1, 0.002):             # a tick late, 100 ms late, a tick late
        clock.set(periodic.when() + late_by)
        loop.run_once()
    assert calls == [(1000.252, 1000.5), (1000.6, 1000.75), (1000.752, 1001.0)]


def test_call_every_skips_the_calls_missed_while_the_loop_was_behind(timer_loop):
    """Three intervals behind: one call, not a burst, and the next deadline keeps the phase."""
    loop, clock = timer_loop
    calls = []
    periodic = loop.call_every(0.25, calls.append, "beat")
    clock.set(1001.1)                               # deadlines 1000.25 ... 1001.0 all passed
    loop.run_once()
    loop.run_once()
    assert calls == ["beat"] and periodic.when() == 1001.25
    clock.set(1001.252)
    loop.run_once()
    assert calls == ["beat", "beat"] and periodic.when() == 1001.5


def test_call_every_cancelled_from_its_own_callback_stops(timer_loop):
    """cancel() inside the callback stops the calls and leaves no timer behind."""
    loop, clock = timer_loop
    calls = []

    def beat():
        calls.append(clock())
        if len(calls) == 2:
            periodic.cancel()

    periodic = loop.call_every(1.0, beat)
    for _ in range(5):
        clock.advance(1.0)
        loop.run_once()
    assert calls == [1001.0, 1002.0]
    assert periodic.cancelled() and loop.stats()["timers_pending"] == 0


def test_call_every_logs_an_exception_and_goes_on(timer_loop, caplog):
    """A callback that raises is logged by name on the 'reactor' logger, and still called."""
    loop, clock = timer_loop
    calls = []

    def failing_beat():
        calls.append(clock())
        raise ValueError("beat failed")

    loop.call_every(1.0, failing_beat)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        for _ in range(3):
            clock.advance(1.0)
            loop.run_once()
    assert calls == [1001.0, 1002.0, 1003.0]
    errors = [r for r in caplog.records if r.name == "reactor" and "beat failed" in r.getMessage()]
    assert len(errors) == 3
    assert "failing_beat" in errors[0].getMessage()


@pytest.mark.parametrize("interval", [0, -1, math.inf, math.nan])
def test_call_every_rejects_bad_intervals(timer_loop, interval):
    """An interval that is not a finite number > 0 raises InvalidDelayError, scheduling nothing."""
    with pytest.raises(reactor.InvalidDelayError):
        timer_loop[0].call_every(interval, print)
    assert timer_loop[0].stats()["timers_pending"] == 0

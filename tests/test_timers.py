"""Timer backends: the wheel and the heap against a sorted-list reference."""

import bisect
import gc
import math
import random
import tracemalloc

import pytest

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


def test_deadlines_at_or_before_the_last_expiry_fire_next_time(backend):
    """A timer due now or in the past (call_soon-like) fires at the next expire, in order."""
    fired = []
    expire(backend, 1.0)
    backend.schedule(1.0, fired.append, ("now",))
    backend.schedule(0.5, fired.append, ("past",))
    backend.schedule(0.999, fired.append, ("just past",))
    deadline = backend.next_deadline()
    assert deadline <= 1.0 + TICK + 1e-9
    expire(backend, max(1.0, deadline))
    assert fired == ["past", "just past", "now"]


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
    """60,000 random schedule/cancel/reset/advance ops per run match a sorted list (>=100k per backend)."""
    rng = random.Random(seed)
    timers = BACKENDS[name]()
    timers.now = now = 0.0
    timers.clock = lambda: timers.now
    model = SortedListModel()
    handles = {}            # id -> timer, live or recently fired
    seq = 0
    fired_total = 0
    distances = [(0.05, 0), (0.25, 4), (0.30, 256), (0.25, 65_536), (0.10, 1 << 24), (0.05, 1 << 34)]

    def random_delay():
        roll, acc = rng.random(), 0.0
        for share, ticks in distances:
            acc += share
            if roll < acc:
                return rng.uniform(0, ticks) * TICK
        return 0.0

    for step in range(60_000):
        context = "seed=%d step=%d backend=%s" % (seed, step, name)
        op = rng.random()
        if op < 0.40 or not handles:
            when = now + random_delay()
            timer = timers.schedule(when, lambda: None, ())
            handles[id(timer)] = timer
            model.add(id(timer), when, seq)
            seq += 1
        elif op < 0.55:
            timer = handles.pop(rng.choice(list(handles)) if len(handles) < 64
                                else rng.choice(list(handles.keys())[-64:]))
            timer.cancel()
            if id(timer) in model.by_id:
                model.remove(id(timer))
        elif op < 0.70:
            key = rng.choice(list(handles)[-64:])
            timer = handles[key]
            delay = random_delay()
            timer.reset(delay)
            if key in model.by_id:
                model.remove(key)
            model.add(key, now + delay, seq)
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
            for timer in fired:
                key = id(timer)
                assert key in model.by_id, "fired twice or after cancel: " + context
                assert timer.when() <= now, "fired early: " + context
                if idle:
                    assert now - timer.when() <= TICK + 1e-9, "late when idle: " + context
                model.remove(key)
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

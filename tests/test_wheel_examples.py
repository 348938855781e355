"""The worked examples in reactor/wheel.py's docstrings, executed step by step.

Each test replays one example with the numbers the docstring uses, so the
docstring cannot drift from the code. The wheel is built with one-second
ticks so that times read as tick numbers, exactly. Where a step is about
where a timer sits, the tests read private, plainly named state: the
wheel's ``_position`` and ``_occupied`` bitmaps, a timer's ``_pos`` (its
index in the flat slot list, through ``level_and_slot``), and the method
under study, ``_next_event_tick()``.
"""

from reactor.wheel import SLOTS, TimerWheel

TICK = 1.0          # one-second ticks: a deadline of 1700.0 s is tick 1700


def wheel_at(position):
    """A wheel whose position (first tick not yet expired) is ``position``."""
    wheel = TimerWheel(TICK, now=position - 1.0)
    assert wheel._position == position
    return wheel


def level_and_slot(timer):
    """Where a scheduled timer sits: (level, slot index within that level)."""
    return divmod(timer._pos, SLOTS)


def test_module_example_a_timer_700_ticks_away_cascades_then_fires_on_time():
    """Module docstring: from position 1000, tick 1700 waits in level 1, cascades at 1536."""
    wheel = wheel_at(1000)
    timer = wheel.schedule(1700.0, print, ())

    # "too far for level 0, so it goes to level 1, slot (1700 >> 8) & 255 = 6"
    assert level_and_slot(timer) == (1, 6)

    # "When the position reaches tick 1536 the wheel cascades that slot": the
    # wheel's next event is that cascade point, and nothing moves before it.
    assert wheel.next_deadline() == 1536.0
    wheel.expire(1535.0, [])
    assert level_and_slot(timer) == (1, 6)
    wheel.expire(1536.0, [])
    # "ours is now 164 ticks away and lands in level 0, slot 1700 & 255 = 164"
    assert level_and_slot(timer) == (0, 164)

    # "and fires when the position reaches 1700": not at 1699, then at 1700.
    ready = []
    wheel.expire(1699.0, ready)
    assert ready == []
    wheel.expire(1700.0, ready)
    assert ready == [timer]


def test_module_example_level_1_slot_6_covers_ticks_1536_to_1791():
    """Module docstring: from position 1000, ticks 1536-1791 share level-1 slot 6."""
    wheel = wheel_at(1000)
    for tick, where in [(1535, (1, 5)), (1536, (1, 6)), (1791, (1, 6)), (1792, (1, 7))]:
        assert level_and_slot(wheel.schedule(float(tick), print, ())) == where, tick


def test_next_event_tick_example_rotates_each_level_bitmap():
    """_next_event_tick docstring: position 1000, bits 5 and 240, level-1 bit 6: 1008, then 1536."""
    wheel = wheel_at(1000)                        # 1000 = 3 * 256 + 232: level-0 slot 232
    at_1008 = wheel.schedule(1008.0, print, ())   # level 0, slot 1008 & 255 = 240
    at_1029 = wheel.schedule(1029.0, print, ())   # level 0, slot 1029 & 255 = 5
    wheel.schedule(1700.0, print, ())             # level 1, slot 6 (ticks 1536-1791)
    assert wheel._occupied[0] == (1 << 5) | (1 << 240)
    assert wheel._occupied[1] == 1 << 6

    # Level 0: rotating right by 232 puts bit 240 at bit 8 and bit 5 at bit 29;
    # the nearer, slot 240, fires at 1008 and wins over level 1's 1536.
    assert wheel._next_event_tick() == 1008
    at_1008.cancel()
    assert wheel._next_event_tick() == 1029

    # Level 1 alone: the first block boundary >= 1000 is block 4 (tick 1024);
    # bit 6 is 2 blocks further, so the slot cascades at block 6, tick 1536.
    at_1029.cancel()
    assert wheel._next_event_tick() == 1536
    assert wheel.next_deadline() == 1536.0

#!/usr/bin/env python3
"""Draw the four pictures of docs/LEARN.md, section 4, as SVG files next to this script.

    python3 docs/pictures/draw.py            write the four .svg files
    python3 docs/pictures/draw.py --check    exit 1 if a committed .svg differs

Each picture is one function that returns the SVG text; small helpers draw a
text line, a box, an arrow. The script uses the standard library only and
takes its numbers from the code where the code has them (the water marks and
caps from ``reactor.policy.DEFAULT_LIMITS``, the slot arithmetic from
``reactor.wheel``), so ``--check`` (run by ``tests/test_pictures.py``) fails
when a default changes and the pictures have not been redrawn.

Text in backticks is set in a monospace font: ``"call `write()` now"``.
Coordinates are SVG user units (pixels at 100%), origin top left.
"""

import argparse
import os
import sys
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))    # the repository root

from reactor.policy import DEFAULT_LIMITS  # noqa: E402
from reactor.wheel import SLOT_BITS, SLOT_MASK, SLOTS  # noqa: E402

WIDTH = 880
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
INK, MUTED, ACCENT = "#222222", "#5a5a5a", "#b03a2e"
WAIT, IO, RUN = "#e3ecf7", "#e3f2e1", "#fbeedb"         # the three steps of a pass
PLAIN, HIGHLIGHT = "#f4f4f4", "#f8d7d3"
KiB, MiB = 1024, 1024 * 1024


# -- helpers ------------------------------------------------------------------------

def text(x, y, words, size=13, anchor="start", bold=False, color=INK, mono=False):
    """One line of text at baseline ``y``; `backticked` parts are set in monospace."""
    style = ' font-size="%d"' % size
    if anchor != "start":
        style += ' text-anchor="%s"' % anchor
    if bold:
        style += ' font-weight="bold"'
    if color != INK:
        style += ' fill="%s"' % color
    if mono:
        style += ' font-family="%s"' % MONO
    parts = words.split("`")
    spans = "".join(escape(part) if i % 2 == 0 else
                    '<tspan font-family="%s">%s</tspan>' % (MONO, escape(part))
                    for i, part in enumerate(parts) if part)
    return '<text x="%g" y="%g"%s>%s</text>\n' % (x, y, style, spans)


def lines(x, y, rows, size=13, leading=None, **style):
    """Several text lines, the first baseline at ``y``."""
    leading = leading or round(size * 1.4)
    return "".join(text(x, y + i * leading, row, size, **style) for i, row in enumerate(rows))


def box(x, y, w, h, fill=PLAIN, stroke=INK, dashed=False):
    """A rounded rectangle."""
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return ('<rect x="%g" y="%g" width="%g" height="%g" rx="5" fill="%s" stroke="%s"%s/>\n'
            % (x, y, w, h, fill, stroke, dash))


def label_box(x, y, w, h, rows, fill=PLAIN, size=13, stroke=INK, dashed=False, **style):
    """A box with its text lines centred in it, the first one bold."""
    leading = round(size * 1.4)
    top = y + h / 2 - (len(rows) - 1) * leading / 2 + size * 0.35
    out = box(x, y, w, h, fill, stroke, dashed)
    for i, row in enumerate(rows):
        out += text(x + w / 2, top + i * leading, row, size, "middle", bold=(i == 0), **style)
    return out


def note_box(x, y, w, h, title, rows, fill=PLAIN, size=12):
    """A box with a bold first line and left-aligned notes under it."""
    return (box(x, y, w, h, fill) + text(x + 10, y + 20, title, 14, bold=True)
            + lines(x + 10, y + 38, rows, size))


def arrow(x1, y1, x2, y2, color=INK, dashed=False):
    """A straight arrow from (x1, y1) to (x2, y2), the head at the end."""
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    marker = "head-accent" if color == ACCENT else "head"
    return ('<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="1.6"%s '
            'marker-end="url(#%s)"/>\n' % (x1, y1, x2, y2, color, dash, marker))


def curve(path, color=INK):
    """An arrow along an SVG path (``M x y C ...``), the head at the end."""
    marker = "head-accent" if color == ACCENT else "head"
    return ('<path d="%s" fill="none" stroke="%s" stroke-width="1.6" marker-end="url(#%s)"/>\n'
            % (path, color, marker))


def document(title, height, body):
    """Wrap ``body`` in an SVG document: white background, arrow heads, title."""
    heads = "".join(
        '<marker id="%s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>'
        % (name, color) for name, color in (("head", INK), ("head-accent", ACCENT)))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="%s" fill="%s">\n'
            '<title>%s</title>\n<defs>%s</defs>\n'
            '<rect width="100%%" height="100%%" fill="#ffffff"/>\n%s</svg>\n'
            % (WIDTH, height, WIDTH, height, SANS, INK, escape(title.replace("`", "")),
               heads, text(20, 32, title, 18, bold=True) + body))


# -- the four pictures --------------------------------------------------------------

def pass_timeline():
    """Two passes of ``EventLoop._run_once``: where callbacks queued in steps 2 and 3 run."""
    out = text(20, 56, "`loop.py:EventLoop._run_once`: each pass waits, dispatches I/O, then "
                       "runs the callbacks that were ready before step 3 began.", 13, color=MUTED)
    steps = [(20, 140, "1 wait", WAIT), (140, 310, "2 I/O", IO), (310, 470, "3 run", RUN),
             (470, 620, "1 wait", WAIT), (620, 720, "2 I/O", IO), (720, 860, "3 run", RUN)]
    out += text(245, 84, "pass N", 14, "middle", bold=True)
    out += text(665, 84, "pass N+1", 14, "middle", bold=True)
    for left, right, name, fill in steps:
        out += label_box(left, 94, right - left, 36, [name], fill)
    out += arrow(20, 144, 870, 144) + text(868, 160, "time", 12, "end", color=MUTED)
    notes = [
        (20, ["`select(timeout)`", "sleeps until a", "socket is ready", "or a timer is due"]),
        (140, ["`on_readable()`", "→ `data_received()`", "calls `call_soon(B)`",
               "and `close()`, which", "queues `connection_lost`"]),
        (310, ["expire timers,", "then `due = len(ready)`", "B runs", "`connection_lost` runs",
               "B calls `call_soon(C)`:", "C is queued, but due", "was counted: C waits"]),
        (470, ["`select(0)`: no sleep,", "the ready queue", "is not empty"]),
        (620, ["ready fds"]),
    ]
    for left, rows in notes:
        out += lines(left + 8, 176, rows, 12, leading=18)
    out += text(740, 176, "C runs", 14, bold=True, color=ACCENT)

    out += text(20, 326, "The ready queue (FIFO) as step 3 of pass N begins:", 14, bold=True)
    queue = [(20, 90, "B"), (100, 250, "`connection_lost`"), (260, 420, "timer T, due now")]
    for left, right, name in queue:
        out += label_box(left, 338, right - left, 36, [name], RUN)
    out += ('<line x1="440" y1="330" x2="440" y2="384" stroke="%s" stroke-dasharray="4 3"/>\n'
            % MUTED)
    out += label_box(460, 338, 70, 36, ["C"], "#ffffff", stroke=ACCENT, dashed=True, color=ACCENT)
    out += '<path d="M20 384 v6 h400 v-6" fill="none" stroke="%s"/>\n' % INK
    out += lines(20, 408, ["`due` = 3, counted after the timers expired and before",
                           "anything runs: exactly these three run in pass N"], 12, leading=18)
    out += lines(460, 408, ["B appends C during step 3, after the", "count: C runs in pass N+1, "
                            "after a select(0)"], 12, leading=18, color=ACCENT)
    out += curve("M530 356 C 700 356, 765 300, 765 186", ACCENT)
    out += lines(20, 466, ["Step 3 runs exactly `due` callbacks, so a callback that keeps "
                           "re-queueing itself cannot starve the sockets.",
                           "Proved by `tests/test_loop.py::"
                           "test_callbacks_queued_during_a_pass_wait_for_the_next`."], 13,
                 leading=20)
    return document("A pass, and where a callback queued in step 3 runs", 500, out)


def layers():
    """The layer stack of a TLS connection with a Guard: both faces of each layer."""
    out = text(20, 56, "Events go up (`data_received`), commands go down (`write`). "
                       "Each layer is a `protocols.py:Layer`.", 13, color=MUTED)
    out += text(20, 88, "layer", 13, bold=True)
    out += lines(235, 88, ["faces up: a transport", "the layer above calls these"], 13, 16)
    out += lines(555, 88, ["faces down: a protocol", "the layer below calls these"], 13, 16)
    rows = [
        ("app", "your protocol", ["(nothing above it)"],
         ["`connection_made, data_received(plain),`", "`eof_received, connection_lost,`",
          "`pause_writing, resume_writing`"]),
        ("Guard", "`protect/guard.py`", ["`write, close, abort, pause_reading,`",
                                       "`resume_reading, get_extra_info,`",
                                       "`is_closing ...`  the top of the stack"],
         ["`connection_made, data_received,`", "`eof_received, connection_lost, ...`"]),
        ("TLSTransport", "`tls.py`",
         ["`write(plain)` → encrypt,", "`close()` → close_notify ..."],
         ["`data_received(ciphertext)` → decrypt,", "`eof_received, connection_lost, ...`"]),
        ("StreamTransport", "`streams.py`", ["`write(ciphertext), close,`", "`pause_reading ...`"],
         ["`on_readable, on_writable`", "the loop calls these: the transport is",
          "the watcher of its socket's fd"]),
    ]
    hops = [("write", "data_received"), ("write", "data_received"),
            ("write", "data_received"), ("send", "recv")]
    top = 116
    for (name, where, up, down), (command, event) in zip(rows, hops):
        out += label_box(20, top, 200, 66, [name, where], "#ffffff" if name == "app" else IO,
                         size=14)
        out += box(235, top, 305, 66) + lines(245, top + 20, up, 12, leading=18)
        out += box(555, top, 305, 66) + lines(565, top + 20, down, 12, leading=18)
        out += arrow(80, top + 70, 80, top + 96)
        out += text(72, top + 88, command, 12, "end", mono=True)
        out += arrow(150, top + 96, 150, top + 70) + text(158, top + 88, event, 12, mono=True)
        top += 100
    out += label_box(20, top, 840, 40, ["socket  ↔  selector"], WAIT, size=14)
    out += lines(20, top + 70, [
        "The top of the stack, here the Guard, is what the app writes to, what "
        "`Server.connections()` returns",
        "and what `Server.shutdown()` closes, so a shutdown sends close_notify.",
        "A client that authenticates has `ClientAuth` between the Guard and the app."],
        13, leading=20)
    return document("One connection's layers, TLS and Guard, and both faces of each",
                    top + 130, out)


def wheel_cascade():
    """The worked example of ``wheel.py``'s docstring: a timer at tick 1700 cascades at 1536."""
    position, due_tick = 1000, 1700
    level1_slot = (due_tick >> SLOT_BITS) & SLOT_MASK            # 6
    cascade_tick = level1_slot << SLOT_BITS                      # 1536, where slot 6 begins
    level0_slot = due_tick & SLOT_MASK                           # 164

    def level1_slots(y, slots, emptied=None):
        out = level_label(y, 1, "%d ticks" % SLOTS)
        for slot in slots:
            x = 220 + (slot - 3) * 120
            first = slot << SLOT_BITS
            rows = ["slot %d" % slot + (" (emptied)" if slot == emptied else ""),
                    "`%d-%d`" % (first, first + SLOTS - 1)]
            holds_timer = slot == level1_slot and emptied is None
            out += label_box(x, y, 120, 46, rows, HIGHLIGHT if holds_timer else PLAIN,
                             size=12, dashed=slot == emptied)
            if holds_timer:
                out += ('<circle cx="%g" cy="%g" r="10" fill="%s"/>\n' % (x + 104, y + 14, ACCENT)
                        + text(x + 104, y + 18, "T", 12, "middle", bold=True, color="#ffffff"))
        return out

    def level_label(y, level, width):
        return (text(20, y + 19, "level %d" % level, 13, bold=True)
                + text(20, y + 36, "slots of %s" % width, 12, color=MUTED))

    out = text(20, 56, "The worked example of `wheel.py`'s docstring, with a 1 ms tick. "
                       "Each level has %d slots." % SLOTS, 13, color=MUTED)
    out += text(20, 90, "1. The position is tick %d, the first tick not yet expired." % position,
                13, bold=True)
    out += lines(20, 110, [
        "`call_later(0.700, f)`: T is due at tick %d, %d ticks away: too far for level 0 "
        "(under %d ticks)," % (due_tick, due_tick - position, SLOTS),
        "so T goes to level 1, slot `(%d >> 8) & 255 = %d`." % (due_tick, level1_slot)],
        13, leading=18)
    out += level1_slots(142, [3, 4, 5, 6])
    out += label_box(700, 142, 120, 46, ["…"], "#ffffff", stroke=MUTED, dashed=True)
    out += level_label(202, 0, "1 tick")
    out += label_box(220, 202, 600, 40, ["slots for ticks %d … %d  (slot = `tick & 255`)"
                                         % (position, position + SLOTS - 1)], PLAIN, size=13)
    out += text(220, 260, "▲ position = %d" % position, 12, color=MUTED)

    out += text(20, 298, "2. The position reaches %d (`%d & 255 == 0`): level 1, slot %d is "
                         "cascaded." % (cascade_tick, cascade_tick, level1_slot), 13, bold=True)
    out += text(20, 318, "T is re-inserted relative to the position: %d − %d = %d ticks away, "
                         "so level 0, slot `%d & 255 = %d`."
                % (due_tick, cascade_tick, due_tick - cascade_tick, due_tick, level0_slot), 13)
    out += level1_slots(332, [5, 6, 7], emptied=level1_slot)
    out += level_label(412, 0, "1 tick")
    out += label_box(220, 412, 300, 40, ["ticks %d … %d" % (cascade_tick, due_tick - 1)], PLAIN)
    out += label_box(520, 412, 120, 40, ["slot %d: T" % level0_slot], HIGHLIGHT, size=13)
    out += label_box(640, 412, 180, 40, ["ticks %d … %d" % (due_tick + 1,
                                                          cascade_tick + SLOTS - 1)], PLAIN)
    out += arrow(640, 380, 590, 410, ACCENT) + text(652, 402, "cascade", 12, color=ACCENT)
    out += text(220, 470, "▲ position = %d" % cascade_tick, 12, color=MUTED)

    out += text(20, 508, "3. The position reaches %d: slot %d is due." % (due_tick, level0_slot),
                13, bold=True)
    out += label_box(220, 522, 180, 40, ["level 0, slot %d: T" % level0_slot], HIGHLIGHT)
    out += arrow(400, 542, 458, 542) + label_box(460, 522, 160, 40, ["the ready queue"], RUN)
    out += arrow(620, 542, 678, 542) + label_box(680, 522, 180, 40, ["f runs in step 3"], RUN)
    out += lines(20, 600, ["A timer cascades at most once per level, so its total cost stays "
                           "O(levels).",
                           "Each step is checked by `tests/test_wheel_examples.py`."], 13,
                 leading=20)
    return document("A timer cascading in the wheel", 640, out)


def send_buffer():
    """The life of ``StreamTransport._send_buffer``, beside its water marks and caps."""
    limits = DEFAULT_LIMITS
    low, high = limits.low_water_bytes // KiB, limits.high_water_bytes // KiB
    soft = limits.send_buffer_soft_cap_bytes // MiB
    hard = limits.send_buffer_hard_cap_bytes // MiB
    out = text(20, 56, "`streams.py:StreamTransport`: bytes the kernel did not take wait here, "
                       "in order. The numbers are the default `Limits`.", 13, color=MUTED)
    out += note_box(20, 76, 440, 52, "`_send_buffer = None`",
                    ["idle or keeping up: no buffer object; interest = READ"])
    out += arrow(60, 128, 60, 168) + text(72, 153, "`write(data)`: `send()` took only part, "
                                                   "or raised EAGAIN", 12)
    out += note_box(20, 170, 440, 104, "`SendBuffer`: the unsent tail",
                    ["`_enqueue`: append; interest = READ|WRITE",
                     "`_check_high_water`: over %d KiB → `pause_writing()`" % high,
                     "`_check_send_caps`: over the hard cap → `SlowConsumerError`",
                     "`write(more)`: appended behind it, no `send()`: in order"])
    out += arrow(60, 274, 60, 314) + text(72, 299, "the socket is writable", 12)
    out += note_box(20, 316, 440, 66, "`on_writable`: peek → sendmsg → advance",
                    ["at or under %d KiB, if paused → `resume_writing()`" % low,
                     "one pass at a time, as the peer reads"])
    out += curve("M460 336 C 500 336, 500 362, 462 362") + text(468, 330, "`nbytes` > 0", 11,
                                                                 color=MUTED)
    out += arrow(60, 382, 60, 422) + text(72, 407, "`nbytes == 0`", 12)
    out += note_box(20, 424, 440, 70, "`_send_buffer = None`",
                    ["interest = READ; then a pending `close()` closes,",
                     "a pending `write_eof()` shuts down the sending side"])

    # The gauge: bytes queued, 0 at the bottom; not to scale, broken above the high-water mark.
    out += text(540, 84, "bytes queued (`nbytes`), not to scale", 12, bold=True)
    zones = [(400, 460, "#dff0d8"), (300, 400, "#fcf3cf"), (190, 300, "#fae0c8"),
             (110, 190, "#f6cfc8"), (96, 110, "#e6b0aa")]
    for top, bottom, fill in zones:
        out += ('<rect x="540" y="%d" width="40" height="%d" fill="%s"/>\n'
                % (top, bottom - top, fill))
    out += '<rect x="540" y="96" width="40" height="364" fill="none" stroke="%s"/>\n' % INK
    out += ('<path d="M534 246 l8 -6 l8 6 l8 -6 l8 6 l8 -6 l8 6 M534 256 l8 -6 l8 6 l8 -6 l8 6 '
            'l8 -6 l8 6" fill="#ffffff" stroke="%s" stroke-width="1.5"/>\n' % INK)
    labels = [(110, ["%d MiB, the hard cap: over it," % hard, "`SlowConsumerError` at once"]),
              (190, ["%d MiB, the soft cap: over it for %g s"
                     % (soft, limits.send_buffer_soft_cap_seconds),
                     "in a row → `SlowConsumerError`"]),
              (300, ["%d KiB, high-water: over it →" % high, "`pause_writing()`"]),
              (400, ["%d KiB, low-water: at or under it" % low, "→ `resume_writing()`"]),
              (460, ["0"])]
    for y, rows in labels:
        out += '<line x1="580" y1="%d" x2="592" y2="%d" stroke="%s"/>\n' % (y, y, INK)
        out += lines(598, y + 4, rows, 12, leading=16)
    out += lines(598, 344, ["between the marks: no call;", "a paused protocol stays paused"],
                 11, leading=15, color=MUTED)
    out += text(20, 530, "A slow consumer's buffer is dropped and `connection_lost` gets the "
                         "`SlowConsumerError` (`slow_consumers.py`).", 13)
    return document("The life of `_send_buffer`", 556, out)


PICTURES = {
    "pass-timeline.svg": pass_timeline,
    "layers.svg": layers,
    "wheel-cascade.svg": wheel_cascade,
    "send-buffer.svg": send_buffer,
}


def main(argv=None):
    """Write the pictures next to this script, or with ``--check`` compare them; return 0 or 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a committed picture differs from what this draws")
    args = parser.parse_args(argv)
    stale = []
    for name, draw in PICTURES.items():
        path = os.path.join(HERE, name)
        drawn = draw()
        if args.check:
            try:
                with open(path, encoding="utf-8", newline="") as file:
                    if file.read() == drawn:
                        continue
            except FileNotFoundError:
                pass
            stale.append(name)
        else:
            with open(path, "w", encoding="utf-8", newline="\n") as file:
                file.write(drawn)
    if stale:
        print("out of date (run python3 docs/pictures/draw.py): %s" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Small SVG charts drawn with the standard library: grouped bars, lines, stacked panels.

Every function returns an SVG document as a string: well-formed XML built
with ``xml.etree.ElementTree`` (so text is escaped), a ``viewBox``, a white
background, the generic ``sans-serif`` font family (no external fonts or
resources), ~700 px wide and as tall as its content. Every chart has a
title, axis lines, tick labels, axis labels with units, and a legend naming
every series.

Scales: a linear value axis always starts at 0 (or below, for negative
values), so a bar's length is proportional to its value. A log axis is
labelled "log scale"; there a bar runs from the axis's lowest power of ten
and its length is proportional to log(value / that power of ten). Missing
values (None) are drawn as the text "n/a", never as a bar of length 0.

Colours are the Okabe-Ito palette (distinguishable with the common colour
blindnesses), then dashes for lines once colours repeat.
"""

import math
import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 700
FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
           "#8C6D31", "#444444")
DASHES = ("", "7 4", "2 3", "9 3 2 3")
GRID = "#dddddd"
INK = "#222222"
MUTED = "#666666"


# -- formatting -----------------------------------------------------------------

def short(value, digits=3):
    """A compact number: 1234567 -> "1.23M", 119772 -> "120k", 8.3 -> "8.3"."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    rounded = float("%.*g" % (digits, value))
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(rounded) >= scale:
            return _trim("%.*g" % (digits, rounded / scale)) + suffix
    text = "%.*g" % (digits, rounded)
    if "e" in text:                                     # very small: keep it readable
        text = "%.*f" % (digits + 2, rounded)
    return _trim(text)


def value_label(value):
    """A bar's value label: 8.3, 727, 1,735, 119,772, 2.362M."""
    if value is None:
        return "n/a"
    if 100 <= abs(value) < 1e6:
        return "{:,.0f}".format(value)
    return short(value, 4)


def _trim(text):
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def text_width(text, size=12):
    """Estimated width in px of ``text`` in a sans-serif font of ``size`` px."""
    return sum(size * (0.34 if c in "il.,:;'|!1 " else 0.62 if c.islower() or c.isdigit()
                       else 0.7) for c in str(text))


def _num(value):
    return ("%.2f" % value).rstrip("0").rstrip(".")


# -- ticks ------------------------------------------------------------------------

def linear_ticks(low, high, count=5):
    """Round tick values covering [min(low, 0), max(high, 0)]: (ticks, lo, hi)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0:
        high = low + 1.0
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    ticks = [round(first + i * step, 10) for i in range(int(round((last - first) / step)) + 1)]
    return ticks, ticks[0], ticks[-1]


def log_ticks(low, high):
    """Powers of ten (and 2, 5 times them over a short range) covering [low, high] > 0."""
    first = math.floor(math.log10(low) + 1e-9)
    last = math.ceil(math.log10(high) - 1e-9)
    if last <= first:
        last = first + 1
    ticks = []
    for exponent in range(first, last + 1):
        ticks.append(10.0 ** exponent)
        if last - first <= 2 and exponent < last:
            ticks.extend((2 * 10.0 ** exponent, 5 * 10.0 ** exponent))
    return ticks, 10.0 ** first, 10.0 ** last


class Scale:
    """Maps values in [lo, hi] to pixels [a, b], linearly or by log10."""

    def __init__(self, lo, hi, a, b, log=False):
        self.lo, self.hi, self.a, self.b, self.log = lo, hi, a, b, log

    def __call__(self, value):
        if self.log:
            low, high, value = math.log10(self.lo), math.log10(self.hi), math.log10(value)
        else:
            low, high = self.lo, self.hi
        return self.a + (value - low) / (high - low) * (self.b - self.a)


# -- building blocks ------------------------------------------------------------------

def _el(parent, tag, text=None, **attributes):
    """Add a child element; attribute names use _ for - (class_ for class)."""
    attrs = {}
    for key, value in attributes.items():
        if value is None:
            continue
        key = key.rstrip("_").replace("_", "-")
        attrs[key] = _num(value) if isinstance(value, float) else str(value)
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def _document(width, height, title):
    root = ET.Element("svg", {"xmlns": SVG_NS, "width": _num(width), "height": _num(height),
                              "viewBox": "0 0 %s %s" % (_num(width), _num(height)),
                              "font-family": FONT, "font-size": "12", "role": "img"})
    _el(root, "title", title)
    _el(root, "rect", x=0, y=0, width=width, height=height, fill="#ffffff", class_="background")
    return root


def _serialise(root):
    return ET.tostring(root, encoding="unicode")


def _header(root, title, subtitle, width, y=0):
    """Title and subtitle at the top; return the y below them."""
    y += 22
    _el(root, "text", title, x=12, y=y, font_size=15, font_weight="bold", fill=INK,
        class_="chart-title")
    if subtitle:
        for line in _wrap(subtitle, width - 24, 12):
            y += 17
            _el(root, "text", line, x=12, y=y, fill=MUTED, class_="subtitle")
    return y + 8


def _wrap(text, width, size):
    words, lines, line = str(text).split(), [], ""
    for word in words:
        candidate = (line + " " + word).strip()
        if line and text_width(candidate, size) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines or [""]


def _legend(root, entries, y, width, lines=False):
    """Legend entries (label, colour, dash); return the y below it."""
    group = _el(root, "g", class_="legend")
    x, top = 12.0, y
    for label, colour, dash in entries:
        item = 16 + 6 + text_width(label) + 18
        if x > 12 and x + item > width - 12:
            x, y = 12.0, y + 18
        if lines:
            _el(group, "line", x1=x, y1=y + 7, x2=x + 16, y2=y + 7, stroke=colour,
                stroke_width=2.5, stroke_dasharray=dash or None)
            _el(group, "circle", cx=x + 8, cy=y + 7, r=3.5, fill=colour)
        else:
            _el(group, "rect", x=x, y=y + 1, width=12, height=12, fill=colour)
        _el(group, "text", label, x=x + 22, y=y + 11, fill=INK, class_="legend-label")
        x += item
    return y + 18 + 6 if entries else top


def _axis_label(quantity, unit, log):
    bits = [b for b in (unit, "log scale" if log else None) if b]
    if quantity and bits:
        return "%s (%s)" % (quantity, ", ".join(bits))
    return quantity or ", ".join(bits)


def _value_scale(values, log, a, b):
    """(Scale, ticks, log) for values drawn between pixels a and b."""
    present = [v for v in values if v is not None]
    positive = [v for v in present if v > 0]
    if log == "auto":
        log = bool(present) and len(positive) == len(present) \
            and max(positive) / min(positive) > 50
    if log and (not present or len(positive) < len(present)):
        log = False                                     # a log axis cannot show 0 or less
    if log:
        ticks, lo, hi = log_ticks(min(positive), max(positive))
    else:
        ticks, lo, hi = linear_ticks(min(present, default=0.0), max(present, default=0.0))
    return Scale(lo, hi, a, b, log), ticks, log


def _colour(index):
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE)) % len(DASHES)]


def _series_list(categories, series):
    items = list(series.items()) if isinstance(series, dict) else list(series)
    for label, values in items:
        if len(values) != len(categories):
            raise ValueError("series %r has %d values for %d categories"
                             % (label, len(values), len(categories)))
    return [(str(label), list(values)) for label, values in items]


# -- charts -----------------------------------------------------------------------------

def bar_chart(title, categories, series, unit, quantity=None, horizontal=True, log=False,
              subtitle=None, category_label="model", width=WIDTH):
    """Grouped bars: one group per category (model), one bar per series in each group.

    ``series`` maps a label to one value per category (None: drawn "n/a");
    ``unit`` goes on the value axis ("µs", "req/s", "bytes"), after
    ``quantity`` ("server CPU per request"). ``log``: False (linear from 0),
    True, or "auto" (log when every value is positive and they span more
    than 50x); the axis label says "log scale" when it is. ``horizontal``:
    bars grow rightwards from a category axis on the left (long model names
    stay readable); otherwise upwards.
    """
    categories = [str(c) for c in categories]
    items = _series_list(categories, series)
    values = [v for _, vals in items for v in vals]
    entries = [(label, _colour(i)[0], "") for i, (label, _) in enumerate(items)]
    root = _document(width, 100, title)
    top = _legend(root, entries, _header(root, title, subtitle, width), width)
    if horizontal:
        height = _horizontal(root, categories, items, values, unit, quantity, log, top,
                             category_label, width)
    else:
        height = _vertical(root, categories, items, values, unit, quantity, log, top,
                           category_label, width)
    _resize(root, width, height)
    return _serialise(root)


def _resize(root, width, height):
    root.set("height", _num(height))
    root.set("viewBox", "0 0 %s %s" % (_num(width), _num(height)))
    for child in root:
        if child.get("class") == "background":
            child.set("height", _num(height))


def _bar_title(category, label, value, unit):
    return "%s, %s: %s%s" % (category, label, "n/a" if value is None else short(value, 4),
                             "" if value is None or not unit else " " + unit)


def _horizontal(root, categories, items, values, unit, quantity, log, top, category_label,
                width):
    bar, gap, pad = 16.0, 2.0, 7.0
    label_width = min(max([text_width(c) for c in categories] + [40]) + 16, 300)
    x0, x1 = 12 + label_width, width - 78
    group_height = len(items) * bar + (len(items) - 1) * gap + 2 * pad
    y0 = top + 16
    y1 = y0 + max(len(categories), 1) * group_height
    scale, ticks, log = _value_scale(values, log, x0, x1)
    base = scale(scale.lo) if log else scale(0.0)
    _el(root, "text", category_label, x=x0 - 8, y=y0 - 5, text_anchor="end", font_size=11,
        font_weight="bold", fill=MUTED, class_="axis-label category-axis")
    for i, category in enumerate(categories):
        gy = y0 + i * group_height
        if i % 2:
            _el(root, "rect", x=x0, y=gy, width=x1 - x0, height=group_height, fill="#f5f5f5")
        label = _el(root, "text", category, x=x0 - 8, y=gy + group_height / 2 + 4,
                    text_anchor="end", fill=INK, class_="category")
        if category.startswith("reactor"):
            label.set("font-weight", "bold")
    grid = _el(root, "g", class_="grid")
    for tick in ticks:
        x = scale(tick)
        _el(grid, "line", x1=x, y1=y0, x2=x, y2=y1, stroke=GRID, stroke_width=1)
        _el(root, "text", short(tick), x=x, y=y1 + 16, text_anchor="middle", fill=INK,
            font_size=11, class_="tick")
        _el(root, "line", x1=x, y1=y1, x2=x, y2=y1 + 4, stroke=INK, stroke_width=1)
    for i, category in enumerate(categories):
        for j, (label, vals) in enumerate(items):
            value = vals[i]
            y = y0 + i * group_height + pad + j * (bar + gap)
            if value is None:
                _el(root, "text", "n/a", x=base + 4, y=y + bar - 4, fill=MUTED, font_size=11,
                    font_style="italic", class_="na")
                continue
            end = scale(value)
            rect = _el(root, "rect", x=min(base, end), y=y, width=abs(end - base), height=bar,
                       fill=_colour(j)[0], class_="bar", data_category=category,
                       data_series=label, data_value=repr(float(value)))
            _el(rect, "title", _bar_title(category, label, value, unit))
            _el(root, "text", value_label(value), x=max(base, end) + 4 if value >= 0 else end - 4,
                y=y + bar - 4, font_size=10, fill=INK,
                text_anchor="start" if value >= 0 else "end", class_="value")
    axes = _el(root, "g", class_="axes")
    _el(axes, "line", x1=x0, y1=y1, x2=x1, y2=y1, stroke=INK, stroke_width=1.2,
        class_="axis value-axis")
    _el(axes, "line", x1=base, y1=y0, x2=base, y2=y1, stroke=INK, stroke_width=1.2,
        class_="axis category-axis")
    _el(root, "text", _axis_label(quantity, unit, log), x=(x0 + x1) / 2, y=y1 + 36,
        text_anchor="middle", fill=INK, class_="axis-label value-axis")
    return y1 + 50


def _vertical(root, categories, items, values, unit, quantity, log, top, category_label,
              width):
    x0, x1 = 74.0, width - 16.0
    y0 = top + 44                                       # room for the values over the bars
    y1 = y0 + 240
    scale, ticks, log = _value_scale(values, log, y1, y0)
    base = scale(scale.lo) if log else scale(0.0)
    count = max(len(categories), 1)
    group = (x1 - x0) / count
    bar = max(4.0, min(22.0, (group - 12) / max(len(items), 1)))
    grid = _el(root, "g", class_="grid")
    for tick in ticks:
        y = scale(tick)
        _el(grid, "line", x1=x0, y1=y, x2=x1, y2=y, stroke=GRID, stroke_width=1)
        _el(root, "text", short(tick), x=x0 - 7, y=y + 4, text_anchor="end", fill=INK,
            font_size=11, class_="tick")
        _el(root, "line", x1=x0 - 4, y1=y, x2=x0, y2=y, stroke=INK, stroke_width=1)
    widest = max([text_width(c) for c in categories] + [0])
    slanted = widest > group - 6
    for i, category in enumerate(categories):
        centre = x0 + (i + 0.5) * group
        if slanted:
            label = _el(root, "text", category, x=centre, y=y1 + 14, text_anchor="end",
                        transform="rotate(-30 %s %s)" % (_num(centre), _num(y1 + 14)),
                        fill=INK, class_="category")
        else:
            label = _el(root, "text", category, x=centre, y=y1 + 17, text_anchor="middle",
                        fill=INK, class_="category")
        if category.startswith("reactor"):
            label.set("font-weight", "bold")
        start = centre - bar * len(items) / 2
        for j, (name, vals) in enumerate(items):
            value = vals[i]
            x = start + j * bar
            mid = x + bar / 2 + 3
            if value is None:
                _el(root, "text", "n/a", x=mid, y=base - 4, font_size=10, fill=MUTED,
                    font_style="italic",
                    transform="rotate(-90 %s %s)" % (_num(mid), _num(base - 4)),
                    class_="na")
                continue
            end = scale(value)
            rect = _el(root, "rect", x=x + 1, y=min(base, end), width=bar - 2,
                       height=abs(base - end), fill=_colour(j)[0], class_="bar",
                       data_category=category, data_series=name, data_value=repr(float(value)))
            _el(rect, "title", _bar_title(category, name, value, unit))
            at = min(base, end) - 4
            _el(root, "text", short(value, 3), x=mid, y=at, font_size=9, fill=INK,
                transform="rotate(-90 %s %s)" % (_num(mid), _num(at)), class_="value")
    axes = _el(root, "g", class_="axes")
    _el(axes, "line", x1=x0, y1=y0, x2=x0, y2=y1, stroke=INK, stroke_width=1.2,
        class_="axis value-axis")
    _el(axes, "line", x1=x0, y1=base, x2=x1, y2=base, stroke=INK, stroke_width=1.2,
        class_="axis category-axis")
    middle = (y0 + y1) / 2
    _el(root, "text", _axis_label(quantity, unit, log), x=16, y=middle, text_anchor="middle",
        transform="rotate(-90 16 %s)" % _num(middle), fill=INK, class_="axis-label value-axis")
    below = y1 + (widest * 0.5 + 24 if slanted else 36)
    _el(root, "text", category_label, x=(x0 + x1) / 2, y=below, text_anchor="middle",
        fill=INK, class_="axis-label category-axis")
    return below + 14


def line_chart(title, x_values, series, x_label, y_label, log_x=True, log_y=False,
               subtitle=None, width=WIDTH):
    """One line per series over ``x_values`` (the scaling curve: 1 ... 10,000 connections).

    ``series`` maps a label to one y value per x value; None points are
    skipped (the line joins the points on either side, each point is marked).
    ``x_label``/``y_label`` are the full axis labels with units; "log scale"
    is added when an axis is logarithmic. ``log_y``: False, True or "auto".
    """
    x_values = list(x_values)
    items = _series_list(x_values, series)
    root = _document(width, 100, title)
    entries = [(label,) + _colour(i) for i, (label, _) in enumerate(items)]
    top = _legend(root, entries, _header(root, title, subtitle, width), width, lines=True)
    x0, x1 = 78.0, width - 24.0
    y0, y1 = top + 10, top + 270
    if log_x and any(x <= 0 for x in x_values):
        log_x = False
    lo_x, hi_x = (min(x_values), max(x_values)) if x_values else (1, 10)
    if hi_x == lo_x:
        lo_x, hi_x = (lo_x / 10.0, hi_x * 10.0) if log_x else (lo_x - 1, hi_x + 1)
    xs = Scale(lo_x, hi_x, x0 + 14, x1 - 14, log_x)
    ys, ticks, log_y = _value_scale([v for _, vals in items for v in vals], log_y, y1, y0)
    grid = _el(root, "g", class_="grid")
    for tick in ticks:
        y = ys(tick)
        _el(grid, "line", x1=x0, y1=y, x2=x1, y2=y, stroke=GRID, stroke_width=1)
        _el(root, "text", short(tick), x=x0 - 7, y=y + 4, text_anchor="end", fill=INK,
            font_size=11, class_="tick")
        _el(root, "line", x1=x0 - 4, y1=y, x2=x0, y2=y, stroke=INK, stroke_width=1)
    x_ticks = x_values if x_values else [lo_x, hi_x]
    for tick in x_ticks:
        x = xs(tick)
        _el(grid, "line", x1=x, y1=y0, x2=x, y2=y1, stroke=GRID, stroke_width=1)
        text = "{:,}".format(int(tick)) if float(tick).is_integer() else short(tick)
        _el(root, "text", text, x=x, y=y1 + 17, text_anchor="middle", fill=INK, font_size=11,
            class_="tick")
        _el(root, "line", x1=x, y1=y1, x2=x, y2=y1 + 4, stroke=INK, stroke_width=1)
    for i, (label, vals) in enumerate(items):
        colour, dash = _colour(i)
        points = [(xs(x), ys(v), x, v) for x, v in zip(x_values, vals) if v is not None]
        if len(points) > 1:
            _el(root, "polyline", points=" ".join("%s,%s" % (_num(px), _num(py))
                                                  for px, py, _, _ in points),
                fill="none", stroke=colour, stroke_width=2.2, stroke_dasharray=dash or None,
                class_="line", data_series=label)
        for px, py, x, v in points:
            dot = _el(root, "circle", cx=px, cy=py, r=3.5, fill=colour, class_="point",
                      data_series=label, data_x=repr(float(x)), data_value=repr(float(v)))
            _el(dot, "title", "%s at %s: %s" % (label, "{:,}".format(x) if float(x).is_integer()
                                                 else short(x), short(v, 4)))
    axes = _el(root, "g", class_="axes")
    _el(axes, "line", x1=x0, y1=y0, x2=x0, y2=y1, stroke=INK, stroke_width=1.2,
        class_="axis y-axis")
    _el(axes, "line", x1=x0, y1=y1, x2=x1, y2=y1, stroke=INK, stroke_width=1.2,
        class_="axis x-axis")
    _el(root, "text", x_label + (" (log scale)" if log_x else ""), x=(x0 + x1) / 2, y=y1 + 38,
        text_anchor="middle", fill=INK, class_="axis-label x-axis")
    middle = (y0 + y1) / 2
    label = y_label + (", log scale" if log_y else "")
    if log_y and y_label.endswith(")"):
        label = y_label[:-1] + ", log scale)"
    _el(root, "text", label, x=16, y=middle, text_anchor="middle",
        transform="rotate(-90 16 %s)" % _num(middle), fill=INK, class_="axis-label y-axis")
    _resize(root, width, y1 + 52)
    return _serialise(root)


def panels(title, charts, subtitle=None, width=WIDTH):
    """Stack SVG charts (strings from this module) under one title, as one SVG."""
    root = _document(width, 100, title)
    y = _header(root, title, subtitle, width)
    for chart in charts:
        inner = ET.fromstring(chart)
        for element in inner.iter():
            if element.tag.startswith("{"):
                element.tag = element.tag.split("}", 1)[1]
        height = float(inner.get("height"))
        inner.set("x", "0")
        inner.set("y", _num(y))
        inner.set("width", inner.get("width") or _num(width))
        inner.attrib.pop("role", None)
        root.append(inner)
        y += height + 4
    _resize(root, width, y + 6)
    return _serialise(root)
